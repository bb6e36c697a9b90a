"""Tests of tenantry.operator: the deployment's operators and what only they may do."""
