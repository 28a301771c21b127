"""The registry of backends and the models they serve: database rows, discovery, and the in-memory view
the request path reads (never the database)."""
