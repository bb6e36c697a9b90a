"""Shared helpers and fakes of the tests (not tests themselves)."""
