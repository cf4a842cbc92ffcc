"""The operator's application: the `gauntlet` command line (its heavy commands run in `pipeline_assets.cli`)."""
