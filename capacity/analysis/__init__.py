"""Analysis over the canonical tables: statistics, steps, capacity models, sizing."""
