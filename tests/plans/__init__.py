"""Tests of tenantry.plans: the plan catalog."""
