"""Gauntlet's assets, asset checks, partitions and jobs; `definitions` assembles everything."""
