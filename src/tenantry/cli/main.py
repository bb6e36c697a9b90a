"""The `tenantry` command line (placeholder wiring; the full command set goes through the SDK)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.config import Settings
from tenantry.runtime import migrate as run_migrate
from tenantry.runtime import serve as run_serve

app = typer.Typer(
    no_args_is_help=True, help="Tenantry: teams, roles, quotas, billing and audit for AI platforms."
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create a demo organization and print its login")
    ] = False,
) -> None:
    """Run the server (migrating the embedded SQLite database first)."""
    run_serve(Settings(), host=host, port=port, workers=workers, demo=demo)


@app.command()
def migrate() -> None:
    """Apply database migrations to TENANTRY_DATABASE_URL (or the embedded SQLite database)."""
    url = run_migrate(Settings())
    typer.echo(f"Migrated {url.split('@')[-1]}")


def run() -> None:
    app()
