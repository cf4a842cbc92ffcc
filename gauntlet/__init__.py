"""The operator's application: the `gauntlet` command line (its heavy commands run in `gauntlet.commands`)."""
