"""`tenantry approvals ...`: approval requests of governance policies (docs/governance.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_record, print_table, show

app = typer.Typer(no_args_is_help=True, help="Approval requests: list, approve, deny.")

ApprovalArg = Annotated[str, typer.Argument(help="Approval request id.", show_default=False)]
ReasonOpt = Annotated[str | None, typer.Option(help="Why, for the trail")]


@app.command("list")
def list_(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    status: Annotated[
        str | None, typer.Option(help="pending, approved, denied, expired or used")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """The org's approval requests, newest first."""
    with connection.signed_in() as api:
        found = api.approvals(org, status=status)
    columns = [
        ("ID", lambda a: a.id),
        ("STATUS", lambda a: a.status),
        ("TEAM", lambda a: a.team_id),
        ("REQUESTER", lambda a: a.user_id),
        ("COST", lambda a: a.estimated_cost or "-"),
        ("EXPIRES", lambda a: a.expires_at),
    ]
    show(found, json_output, lambda: print_table(found.approvals, columns, empty="No requests."))


@app.command("approve")
def approve(
    approval_id: ApprovalArg, reason: ReasonOpt = None, json_output: JsonFlag = False
) -> None:
    """Approve a pending request (approvers only): its requester may then retry, once."""
    with connection.signed_in() as api:
        found = api.approve(approval_id, reason=reason)
    show(found, json_output, lambda: print_record(found, ["id", "status", "decided_by"]))


@app.command("deny")
def deny(approval_id: ApprovalArg, reason: ReasonOpt = None, json_output: JsonFlag = False) -> None:
    """Deny a pending request (approvers only)."""
    with connection.signed_in() as api:
        found = api.deny_approval(approval_id, reason=reason)
    show(found, json_output, lambda: print_record(found, ["id", "status", "decided_by"]))
