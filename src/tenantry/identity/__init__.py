"""Global user accounts, passwords, sessions and refresh tokens, API keys."""
