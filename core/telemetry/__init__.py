"""GPU telemetry: what each node's sidecar reports, polled once per node, kept in memory for the
request path and the pages."""
