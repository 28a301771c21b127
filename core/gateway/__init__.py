"""The proxy core: from a canonical request to an engine and back, with slots, failover and timing."""
