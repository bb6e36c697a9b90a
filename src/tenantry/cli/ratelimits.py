"""`tenantry ratelimit ...`: Rate limits of an organization."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Rate limits of an organization.")
