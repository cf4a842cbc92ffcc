"""Dagster resources: Gauntlet's only doors to the outside world."""
