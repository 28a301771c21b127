"""Stored Responses API answers: written off the request path, read back for their owner."""
