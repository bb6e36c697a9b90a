"""The `tenantry` command."""
