"""Quotas: how much each user may use (limits, budgets, rates) and asking for more."""
