"""Tests of tenantry.tenancy: organizations, teams, members and invites."""
