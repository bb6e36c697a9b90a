"""Tests of tenantry.throttling: rate limits, leases and the API-call ledger."""
