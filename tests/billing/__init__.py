"""Tests of tenantry.billing: rating, invoices, providers, its API, CLI and client."""
