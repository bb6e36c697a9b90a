"""`tenantry access ...`: Ask who may do what: check, explain, who-can, what-can."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Ask who may do what: check, explain, who-can, what-can.")
