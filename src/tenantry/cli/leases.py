"""`tenantry lease ...`: concurrent-run leases of a team.

A job runner acquires a lease before a run starts, heartbeats while it runs, and releases it at
the end; a lease not heartbeated within its TTL expires and frees its slot by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, done, print_record, print_table, show
from tenantry.cli.teams import TeamArg, resolve_team

if TYPE_CHECKING:
    from tenantry.client.throttling import Lease, LeaseAcquired

app = typer.Typer(no_args_is_help=True, help="Concurrent-run leases of a team.")

LEASE_FIELDS = [
    "id",
    "run_id",
    "team_id",
    "holder_type",
    "holder_id",
    "ttl_seconds",
    "acquired_at",
    "heartbeat_at",
    "expires_at",
]
LeaseArg = Annotated[str, typer.Argument(help="The lease's id.", show_default=False)]
TtlOption = Annotated[
    int | None,
    typer.Option("--ttl", help="Seconds the lease lives without a heartbeat (5-86400).", min=5),
]


def _render_acquired(lease: LeaseAcquired) -> None:
    print_record(lease, LEASE_FIELDS)
    slots = lease.concurrent_runs
    limit = "unlimited" if slots.limit is None else str(slots.limit)
    typer.echo(f"\nConcurrent runs in use: {slots.in_use} of {limit}")


@app.command("acquire")
def acquire(
    team: TeamArg,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Your name for the run; one lease per run.")
    ] = None,
    ttl: TtlOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Hold one of the organization's concurrent runs."""
    with connection.signed_in() as api:
        lease = api.acquire_lease(resolve_team(api, team), run_id=run_id, ttl_seconds=ttl)
    show(lease, json_output, lambda: _render_acquired(lease))


@app.command("heartbeat")
def heartbeat(
    team: TeamArg, lease_id: LeaseArg, ttl: TtlOption = None, json_output: JsonFlag = False
) -> None:
    """Keep a lease alive: it expires its TTL from now."""
    with connection.signed_in() as api:
        lease = api.heartbeat_lease(resolve_team(api, team), lease_id, ttl_seconds=ttl)
    show(lease, json_output, lambda: typer.echo(f"Lease {lease.id} expires at {lease.expires_at}."))


@app.command("release")
def release(team: TeamArg, lease_id: LeaseArg, json_output: JsonFlag = False) -> None:
    """Give a lease's slot back."""
    with connection.signed_in() as api:
        team_id = resolve_team(api, team)
        api.release_lease(team_id, lease_id)
    done(json_output, f"Released lease {lease_id}.", {"released": lease_id, "team": team_id})


def _rows(leases: list[Lease]) -> None:
    print_table(
        leases,
        [
            ("RUN", lambda x: x.run_id),
            ("HOLDER", lambda x: f"{x.holder_type}:{x.holder_id}"),
            ("ACQUIRED", lambda x: x.acquired_at),
            ("EXPIRES", lambda x: x.expires_at),
            ("ID", lambda x: x.id),
        ],
        empty="No leases held.",
        keep_whole=("ID",),
    )


@app.command("list")
def list_(team: TeamArg, json_output: JsonFlag = False) -> None:
    """The team's leases that have not expired."""
    with connection.signed_in() as api:
        leases = list(api.iter_leases(resolve_team(api, team)))
    show(leases, json_output, lambda: _rows(leases))
