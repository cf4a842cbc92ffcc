"""Gauntlet's assets, asset checks, partitions, jobs and the instance's run launcher; `definitions` assembles everything."""
