"""Tests of the request stack (tenantry.kit, tenantry.http): lifecycle, idempotency, database."""
