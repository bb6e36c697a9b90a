"""`tenantry operator ...`: the deployment's operators, and what they do to tenants.

`add`, `list` and `remove` bootstrap operators on the database directly, as `migrate` does (the
server's settings: TENANTRY_DATABASE_URL or the embedded database in the data directory). The
other commands talk to the server over the API, signed in as an operator (`tenantry login`):
`tenants`, `show`, `create`, `plan`, `overrides`, `suspend`, `resume`. See docs/operators.md.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tenantry.cli import connection
from tenantry.cli.output import (
    EXIT_USAGE,
    CliError,
    JsonFlag,
    done,
    plain,
    print_json,
    print_record,
    print_table,
    settings_or_exit,
    show,
)

if TYPE_CHECKING:
    from tenantry.client.operator import Tenant

app = typer.Typer(
    no_args_is_help=True,
    help="Operators (the deployment's staff): bootstrap them, and manage every tenant.",
)

EmailArg = Annotated[str, typer.Argument(help="The account's email.", show_default=False)]
OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
TENANT_FIELDS = ["id", "slug", "name", "plan", "status", "member_count", "usage", "created_at"]


# ---- bootstrap, on the database ----


def _setup_error(exc: Exception) -> CliError:
    return CliError(str(exc), exit_code=EXIT_USAGE)


def _read_password(from_stdin: bool) -> str:
    if not from_stdin:
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    password = sys.stdin.read().rstrip("\r\n")
    if not password:
        raise CliError("--password-stdin: nothing was read from standard input")
    return password


@app.command("add")
def add(
    email: EmailArg,
    create: Annotated[
        bool,
        typer.Option("--create", help="Create the account (asks for its password) if missing."),
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="With --create: read the password from stdin.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Make an existing account an operator (on the database, like `migrate`)."""
    from tenantry.runtime import OperatorSetupError, add_operator  # the server stack

    settings = settings_or_exit()
    password = _read_password(password_stdin) if create else None
    try:
        change = add_operator(settings, email, create_password=password)
    except OperatorSetupError as exc:
        raise _setup_error(exc) from None
    made = " (account created)" if change.created_user else ""
    message = (
        f"{change.email} is an operator{made}."
        if change.changed
        else f"{change.email} was an operator already."
    )
    done(
        json_output,
        message,
        {
            "email": change.email,
            "user_id": change.user_id,
            "added": change.changed,
            "created_user": change.created_user,
        },
    )


@app.command("remove")
def remove(email: EmailArg, json_output: JsonFlag = False) -> None:
    """An operator is one no more (the account stays)."""
    from tenantry.runtime import OperatorSetupError, remove_operator  # the server stack

    try:
        change = remove_operator(settings_or_exit(), email)
    except OperatorSetupError as exc:
        raise _setup_error(exc) from None
    message = (
        f"{change.email} is no longer an operator."
        if change.changed
        else f"{change.email} was not an operator."
    )
    done(json_output, message, {"email": change.email, "removed": change.changed})


@app.command("list")
def list_(json_output: JsonFlag = False) -> None:
    """The deployment's operators."""
    from tenantry.runtime import list_operators  # the server stack

    found = list_operators(settings_or_exit())
    if json_output:
        print_json({"operators": found})
        return
    if not found:
        typer.echo("No operators. Add one with `tenantry operator add EMAIL`.")
        return
    for row in found:
        typer.echo(
            f"{row['email']}  {row['user_id']}  added {row['added_at']} by {row['added_by']}"
        )


# ---- tenants, over the API ----


def _usage(tenant: Tenant) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tenant.usage.items())) or "-"


def _tenant_rows(tenants: list[Tenant]) -> None:
    print_table(
        tenants,
        [
            ("SLUG", lambda t: t.slug),
            ("NAME", lambda t: t.name),
            ("PLAN", lambda t: t.plan),
            ("STATUS", lambda t: t.status),
            ("MEMBERS", lambda t: t.member_count),
            ("USAGE (THIS PERIOD)", _usage),
            ("ID", lambda t: t.id),
        ],
        empty="No tenants.",
    )


def _record(tenant: Tenant) -> None:
    print_record(tenant, TENANT_FIELDS)


@app.command("tenants")
def tenants(
    search: Annotated[
        str | None, typer.Option("--search", "-q", help="Part of a name or slug, or an id.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="active or suspended.", show_default=False)
    ] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="Only this plan.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Every tenant: plan, status, members and this period's usage."""
    with connection.signed_in() as api:
        found = list(api.iter_tenants(q=search, status=status, plan=plan))
    show(found, json_output, lambda: _tenant_rows(found))


@app.command("show")
def show_(org: OrgArg, json_output: JsonFlag = False) -> None:
    """One tenant."""
    with connection.signed_in() as api:
        found = api.get_tenant(org)
    show(found, json_output, lambda: _record(found))


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Display name.", show_default=False)],
    owner_email: Annotated[
        str, typer.Option("--owner-email", help="The owner (invited if they have no account).")
    ],
    plan: Annotated[str, typer.Option("--plan", help="Any plan of the catalog.")],
    slug: Annotated[str | None, typer.Option("--slug", help="URL name.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Create a tenant on any plan, for its owner (the operator does not join it)."""
    with connection.signed_in() as api:
        created = api.create_tenant(name, plan=plan, owner_email=owner_email, slug=slug)

    def render() -> None:
        _record(created)
        if created.owner_invitation is not None:
            typer.echo(
                f"\n{owner_email} has no account yet. Send them this link to accept ownership:"
                f"\n{created.owner_invitation.url}"
            )

    show(created, json_output, render)


@app.command("plan")
def plan_(
    org: OrgArg,
    plan: Annotated[
        str | None, typer.Argument(help="The new plan; without it, show the effective plan.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Show a tenant's effective plan, or put it on PLAN outside billing (a contract)."""
    with connection.signed_in() as api:
        if plan is None:
            effective = api.tenant_plan(org)
            show(effective, json_output, lambda: print_record(effective))
            return
        changed = api.set_tenant_plan(org, plan)
    show(changed, json_output, lambda: _record(changed))


@app.command("overrides")
def overrides(
    org: OrgArg,
    body: Annotated[
        str,
        typer.Argument(
            help='The whole custom plan as JSON, e.g. \'{"quotas": {"models": {"limit": "20"}}}\';'
            " '{}' goes back to the catalog plan.",
            show_default=False,
        ),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Replace a tenant's custom plan (its overrides of its catalog plan)."""
    try:
        parsed: Any = json.loads(body)
    except ValueError as exc:
        raise CliError(f"BODY is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise CliError("BODY must be a JSON object")
    with connection.signed_in() as api:
        effective = api.set_tenant_overrides(
            org,
            name=parsed.get("name"),
            quotas=parsed.get("quotas"),
            rate_limits=parsed.get("rate_limits"),
            overage_rates=parsed.get("overage_rates"),
        )
    show(effective, json_output, lambda: print_record(effective))


@app.command("suspend")
def suspend(
    org: OrgArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the trail.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Suspend a tenant: its members and keys get 403 tenant_suspended; nothing is deleted."""
    with connection.signed_in() as api:
        found = api.suspend_tenant(org, reason=reason)
    show(found, json_output, lambda: typer.echo(f"Suspended {found.slug} ({found.id})."))


@app.command("resume")
def resume(org: OrgArg, json_output: JsonFlag = False) -> None:
    """Reactivate a suspended tenant."""
    with connection.signed_in() as api:
        found = api.resume_tenant(org)
    show(found, json_output, lambda: typer.echo(f"Resumed {found.slug} ({found.id})."))


def _catalog_rows(plans: list[Any]) -> None:
    print_table(
        plans,
        [
            ("KEY", lambda p: p.key),
            ("NAME", lambda p: p.name),
            ("MONTHLY", lambda p: plain(p.monthly_price)),
            ("YEARLY", lambda p: plain(p.yearly_price)),
            ("UPGRADE TO", lambda p: p.upgrade_to or "-"),
        ],
        empty="No plans.",
    )


@app.command("plans")
def plans(
    key: Annotated[
        str | None, typer.Argument(help="A plan to add or change.", show_default=False)
    ] = None,
    body: Annotated[
        str | None,
        typer.Argument(
            help='What to change, as JSON, e.g. \'{"monthly_price": "35", "quotas": '
            '{"compute_hours": {"limit": "2000", "enforcement": "soft"}}}\'.',
            show_default=False,
        ),
    ] = None,
    new: Annotated[bool, typer.Option("--new", help="Add KEY as a new plan.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """The plan catalog; with KEY and BODY, change that plan (or add it, with --new): every
    org on it follows at once."""
    if (key is None) != (body is None):
        raise CliError("give both KEY and BODY to change a plan, or neither to list them")
    with connection.signed_in() as api:
        if key is None or body is None:
            catalog = api.plan_catalog()
            show(catalog, json_output, lambda: _catalog_rows(catalog.plans))
            return
        try:
            changes: Any = json.loads(body)
        except ValueError as exc:
            raise CliError(f"BODY is not JSON: {exc}") from None
        if not isinstance(changes, dict):
            raise CliError("BODY must be a JSON object")
        if new:
            saved = api.add_catalog_plan(key, **changes)
        else:
            saved = api.edit_catalog_plan(key, **changes)
    show(saved, json_output, lambda: print_record(saved))
