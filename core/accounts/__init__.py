"""Accounts: users, roles, passwords and API keys."""
