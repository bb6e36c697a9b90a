"""Throttling: rate limits (GCRA, in-process or Redis) and concurrent-run leases."""
