"""Tests of tenantry.privacy: a person's data exported and erased."""
