"""Background jobs, and which process runs the cluster-wide ones."""
