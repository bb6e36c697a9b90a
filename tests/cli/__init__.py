"""Tests of the tenantry command that are not one domain's."""
