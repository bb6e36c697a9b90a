"""The `tenantry` command line. `serve` and `migrate` run the server here; every other command
talks to a server through the SDK (`tenantry.client`), exactly as any other API client would.

Failures end with one line on stderr and a non-zero exit code (see docs/cli.md), never a
traceback: they are raised as exceptions anywhere below and turned into that line in one place,
`TenantryGroup.invoke`.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from tenantry.cli import (
    access,
    account,
    apikeys,
    audit,
    billing,
    grants,
    invites,
    leases,
    orgs,
    quotas,
    ratelimits,
    roles,
    teams,
    usage,
)
from tenantry.cli import worker as worker_command
from tenantry.cli.config import ConfigError
from tenantry.cli.connection import NotSignedIn
from tenantry.cli.output import (
    EXIT_API_ERROR,
    EXIT_UNAUTHENTICATED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    JsonFlag,
    done,
    settings_or_exit,
)
from tenantry.client import ConnectionFailed, TenantryError, Unauthenticated
from tenantry.runtime import migrate as run_migrate
from tenantry.runtime import serve as run_serve

SIGN_IN_HINT = "run `tenantry login --server URL --email EMAIL`"


def _fail(message: str, exit_code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(exit_code)


def _api_failure(exc: TenantryError) -> NoReturn:
    if isinstance(exc, ConnectionFailed):
        _fail(exc.detail, EXIT_UNREACHABLE)
    line = f"{exc.status} {exc.code}: {exc.detail or exc.title}"
    if isinstance(exc, Unauthenticated):
        _fail(f"{line} ({SIGN_IN_HINT})", EXIT_UNAUTHENTICATED)
    _fail(line, EXIT_API_ERROR)


class TenantryGroup(TyperGroup):
    """The root command group: subcommands run inside its `invoke`, so it sees every failure."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TenantryError as exc:
            _api_failure(exc)
        except NotSignedIn:
            _fail(f"not signed in; {SIGN_IN_HINT}", EXIT_UNAUTHENTICATED)
        except CliError as exc:
            _fail(str(exc), exc.exit_code)
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)


app = typer.Typer(
    cls=TenantryGroup,
    no_args_is_help=True,
    help="Tenantry: teams, roles, quotas, billing and audit for AI platforms.",
    pretty_exceptions_show_locals=False,
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
    run_serve(settings_or_exit(), host=host, port=port, workers=workers, demo=demo)


@app.command()
def migrate(json_output: JsonFlag = False) -> None:
    """Apply database migrations to TENANTRY_DATABASE_URL (or the embedded SQLite database)."""
    url = run_migrate(settings_or_exit())
    where = url.split("@")[-1]  # never print a password embedded in the URL
    done(json_output, f"Migrated {where}", {"migrated": where})


# After serve and migrate, so `tenantry --help` lists the commands in the order people meet them.
app.command("signup")(account.signup)
app.command("login")(account.login)
app.command("logout")(account.logout)
app.command("whoami")(account.whoami)
app.add_typer(orgs.app, name="org")
app.add_typer(teams.app, name="team")
app.add_typer(invites.app, name="invite")
app.add_typer(apikeys.app, name="apikey")
app.add_typer(roles.app, name="role")
app.add_typer(grants.app, name="grant")
app.add_typer(access.app, name="access")
app.add_typer(usage.app, name="usage")
app.add_typer(quotas.app, name="quota")
app.add_typer(leases.app, name="lease")
app.add_typer(ratelimits.app, name="ratelimit")
app.add_typer(billing.app, name="billing")
app.add_typer(audit.app, name="audit")
app.add_typer(account.app, name="account")
app.command("worker")(worker_command.worker)


def run() -> None:
    app()
