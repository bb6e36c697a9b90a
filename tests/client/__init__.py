"""Tests of the SDK (tenantry.client) and its contract with the server."""
