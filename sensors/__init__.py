"""Sensors: new Optuna trials, matured paper sessions, alerts."""
