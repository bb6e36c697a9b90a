"""Shared mechanisms with no business rules: database, ids, clock, errors, paging, idempotency."""
