"""`tenantry usage ...`: Record and summarize usage."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Record and summarize usage.")
