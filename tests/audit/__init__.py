"""Tests of tenantry.audit: the chain, export, offline verification, streaming and retention."""
