"""Gauntlet's assets, checks, partitions, jobs and run launcher; `definitions` assembles everything."""
