"""`tenantry domain ...`: an organization's email domains, proved by a DNS TXT record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import CliError, JsonFlag, print_table, show

if TYPE_CHECKING:
    from tenantry.client import Client
    from tenantry.client.models import Domain

app = typer.Typer(no_args_is_help=True, help="Verified domains: add, verify, list.")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]


def _record(domain: Domain) -> None:
    typer.echo(
        f"{domain.domain}: {domain.status}\n\nPublish this DNS record, then run "
        f"`tenantry domain verify`:\n\n  {domain.record_name}  {domain.record_type}  "
        f'"{domain.record_value}"'
    )


def _find(api: Client, org: str, ref: str) -> str:
    """A domain's id, from its id or its name."""
    if ref.startswith("dom_"):
        return ref
    for domain in api.list_domains(org):
        if domain.domain == ref.strip().lower().rstrip("."):
            return domain.id
    raise CliError(f"no domain {ref} in {org}; add it with `tenantry domain add`")


@app.command("add")
def add(
    org: OrgArg,
    name: Annotated[str, typer.Argument(help="The domain, e.g. acme.com.", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """Claim a domain and print the TXT record that proves it."""
    with connection.signed_in() as api:
        domain = api.add_domain(org, name)
    show(domain, json_output, lambda: _record(domain))


@app.command("verify")
def verify(
    org: OrgArg,
    ref: Annotated[str, typer.Argument(help="The domain or its id.", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """Look up the domain's TXT record now."""
    with connection.signed_in() as api:
        domain = api.verify_domain(org, _find(api, org, ref))
    show(domain, json_output, lambda: typer.echo(f"{domain.domain} is verified."))


@app.command("list")
def list_(org: OrgArg, json_output: JsonFlag = False) -> None:
    """List the organization's domains and their TXT records."""
    with connection.signed_in() as api:
        found = api.list_domains(org)

    def rows() -> None:
        print_table(
            found,
            [
                ("DOMAIN", lambda d: d.domain),
                ("STATUS", lambda d: d.status),
                ("TXT RECORD", lambda d: f"{d.record_name} {d.record_value}"),
                ("ID", lambda d: d.id),
            ],
            empty="No domains.",
        )

    show(found, json_output, rows)
