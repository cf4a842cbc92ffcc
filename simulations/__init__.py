"""Pure numerics for Gauntlet: no Dagster, no Optuna (except the demo trainer)."""
