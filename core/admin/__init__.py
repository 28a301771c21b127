"""An admin's changes to backends, nodes, models and run-time settings, each recorded."""
