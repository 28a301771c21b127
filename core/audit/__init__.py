"""The audit trails: every inference request, and every admin change."""
