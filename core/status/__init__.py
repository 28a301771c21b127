"""What the cluster looks like now: public figures, alerts, the admin overview, Prometheus metrics."""
