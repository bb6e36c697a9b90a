"""`tenantry quota ...`: Plan quotas and what is left."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Plan quotas and what is left.")
