"""Collectors: one module per input format, each turning raw files into canonical Arrow tables."""
