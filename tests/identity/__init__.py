"""Tests of tenantry.identity: sign-up, sign-in, sessions, tokens and API keys."""
