"""`tenantry role ...`: Custom roles of an organization."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Custom roles of an organization.")
