"""Tests of tenantry.metering: ingest, admission, quotas and the usage CLI."""
