"""Benchmarks and the generators of large realistic inputs they (and the crash tests) use."""
