"""Tests of tenantry.access: roles, grants, the access engine and its API and CLI."""
