"""The `tenantry` command line. `serve` and `migrate` run the server here; every other command
talks to a server through the SDK (`tenantry.client`), exactly as any other API client would.

Failures end with one line on stderr and a non-zero exit code (see docs/cli.md), never a
traceback: they are raised as exceptions anywhere below and turned into that line in one place,
`TenantryGroup.invoke`.

Start-up (see docs/cli.md): only the commands that work on this machine's database (`serve`,
`migrate`, `worker`, `operator add|list|remove`) import the server (FastAPI, SQLAlchemy, the app),
inside their own functions; the other commands import the SDK when they first ask for a client,
and a command group's module is imported only when the command line names it (`GROUPS`).
tests/cli/test_cli_startup.py holds them to that.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from tenantry.cli import account
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

# The error classes only: importing them does not load the SDK's clients (httpx, pydantic).
from tenantry.client.errors import ConnectionFailed, TenantryError, Unauthenticated

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


# The command groups, each a Typer `app` in its own module, in the order `tenantry --help` lists
# them. Typer turns every command of every group into a Click command before it parses anything,
# some 100 of them; building only the group a command line names keeps `tenantry org list` from
# paying for all the others. `--help` still lists them all, built as they are listed.
GROUPS = {
    "org": "tenantry.cli.orgs",
    "team": "tenantry.cli.teams",
    "invite": "tenantry.cli.invites",
    "apikey": "tenantry.cli.apikeys",
    "role": "tenantry.cli.roles",
    "grant": "tenantry.cli.grants",
    "access": "tenantry.cli.access",
    "usage": "tenantry.cli.usage",
    "quota": "tenantry.cli.quotas",
    "lease": "tenantry.cli.leases",
    "models": "tenantry.cli.models",
    "experiments": "tenantry.cli.experiments",
    "mlflow": "tenantry.cli.mlflow",
    "ratelimit": "tenantry.cli.ratelimits",
    "billing": "tenantry.cli.billing",
    "budget": "tenantry.cli.budgets",
    "alerts": "tenantry.cli.alerts",
    "prices": "tenantry.cli.prices",
    "costs": "tenantry.cli.costs",
    "analytics": "tenantry.cli.analytics",
    "anomalies": "tenantry.cli.anomalies",
    "cost-centres": "tenantry.cli.cost_centres",
    "webhook": "tenantry.cli.webhooks",
    "policy": "tenantry.cli.policies",
    "approvals": "tenantry.cli.approvals",
    "governance": "tenantry.cli.governance",
    "model-access": "tenantry.cli.model_access",
    "compliance": "tenantry.cli.compliance",
    "audit": "tenantry.cli.audit",
    "sso": "tenantry.cli.sso",
    "domain": "tenantry.cli.domains",
    "scim": "tenantry.cli.scim",
    "mfa": "tenantry.cli.mfa",
    "security-policy": "tenantry.cli.security_policy",
    "account": "tenantry.cli.account",
    "operator": "tenantry.cli.operators",
}


def _build_group(name: str) -> Any:
    """The group `name`, built as `app.add_typer(module.app, name=name)` would build it: added
    to a Typer whose settings for building groups (markup, suggestions, tracebacks) are the
    defaults, as the root's are, and taken back."""
    holder = typer.Typer(add_completion=False)
    holder.add_typer(importlib.import_module(GROUPS[name]).app, name=name)
    built = typer.main.get_command(holder)
    assert isinstance(built, TyperGroup)
    return built.commands[name]


class TenantryGroup(TyperGroup):
    """The root command group: subcommands run inside its `invoke`, so it sees every failure.
    It also builds the command groups (`GROUPS`) on demand."""

    def list_commands(self, ctx: Any) -> list[str]:
        # As Typer lists them: the commands first, then the groups in the order they were added.
        commands = [name for name in super().list_commands(ctx) if name not in GROUPS]
        return [*commands, *GROUPS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in GROUPS and cmd_name not in self.commands:
            self.add_command(_build_group(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0] not in GROUPS:
            # Not a command: Typer's "Did you mean ...?" looks for one among those built.
            for name in GROUPS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

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
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Worker processes; more than one needs TENANTRY_REDIS_URL for exact limits"
        ),
    ] = 1,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create a demo organization and print its login")
    ] = False,
) -> None:
    """Run the server (migrating the embedded SQLite database first)."""
    from tenantry.runtime import serve as run_serve  # the server stack: for this command only

    run_serve(settings_or_exit(), host=host, port=port, workers=workers, demo=demo)


@app.command()
def migrate(json_output: JsonFlag = False) -> None:
    """Apply database migrations to TENANTRY_DATABASE_URL (or the embedded SQLite database)."""
    from tenantry.runtime import migrate as run_migrate  # the server stack: for this command only

    url = run_migrate(settings_or_exit())
    where = url.split("@")[-1]  # never print a password embedded in the URL
    done(json_output, f"Migrated {where}", {"migrated": where})


# After serve and migrate, so `tenantry --help` lists the commands in the order people meet them.
app.command("signup")(account.signup)
app.command("login")(account.login)
app.command("logout")(account.logout)
app.command("whoami")(account.whoami)
app.command("worker")(worker_command.worker)  # and the groups, from `GROUPS`


SERVER_COMMANDS = frozenset({"serve", "migrate", "worker", "operator"})


def run() -> None:
    # Pydantic looks for plugins by scanning every installed package's metadata the first time
    # it validates anything: ~35 ms of a client command's start, for plugins the SDK's answers
    # do not use. Not for the commands that run the server (its processes inherit this
    # environment), nor when the caller has said otherwise.
    if len(sys.argv) < 2 or sys.argv[1] not in SERVER_COMMANDS:
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    app()
