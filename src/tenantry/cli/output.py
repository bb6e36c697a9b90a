"""Everything the CLI prints: Rich tables for people, JSON for scripts, one-line errors.

Every command module imports this one, so it imports nothing heavy at the top: Rich, pydantic and
the server's settings are imported by the functions that use them, once a command runs (see
"Start-up" in docs/cli.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

    from tenantry.client.models import OrgMember
    from tenantry.config import Settings

M = TypeVar("M", bound="BaseModel")

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON instead of a table.")
]

# Exit codes, documented in docs/cli.md.
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAUTHENTICATED = 3
EXIT_UNREACHABLE = 4
EXIT_VERIFY_FAILED = 5  # an audit chain or export that is not intact
EXIT_DENIED = 6  # `access check` answered no (like `kubectl auth can-i`, for scripts)
# `billing pay` was answered, but the money did not move: declined, or no answer yet.
EXIT_PAYMENT_FAILED = 7


class CliError(Exception):
    """A failure the CLI itself detects (bad option value, nothing found), as one line."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def console() -> Console:
    # Made per call, not at import, so output goes to whatever sys.stdout is now (CliRunner).
    from rich.console import Console

    return Console(highlight=False)


def plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value) if value else "-"
    return str(value)


def as_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> Any:
    from pydantic import BaseModel  # loaded already by the SDK that made `value`

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return value
    return [item.model_dump(mode="json") for item in value]


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    typer.echo(json.dumps(as_json(value), indent=2))


def print_table(
    rows: Iterable[M],
    columns: Sequence[tuple[str, Callable[[M], Any]]],
    *,
    empty: str,
    keep_whole: Sequence[str] = (),
) -> None:
    """Rows as a table; columns named in `keep_whole` are never wrapped (others give way)."""
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for title, _ in columns:
        # Ids must stay whole for copy and paste: fold them rather than cut them with "…".
        table.add_column(title, overflow="fold", no_wrap=title in keep_whole)
    count = 0
    for row in rows:
        table.add_row(*(plain(get(row)) for _, get in columns))
        count += 1
    if count == 0:
        typer.echo(empty)
        return
    console().print(table)


def print_record(record: BaseModel, fields: Sequence[str] | None = None) -> None:
    """One object as `field  value` lines."""
    from rich.table import Table

    data = record.model_dump()
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name in fields or list(data):
        table.add_row(name, plain(data.get(name)))
    console().print(table)


def show(
    result: M | list[M],
    json_output: bool,
    render: Callable[[], None],
) -> None:
    """Print `result` as JSON when asked, else as `render` lays it out for people."""
    if json_output:
        print_json(result)
    else:
        render()


def done(json_output: bool, message: str, data: dict[str, Any]) -> None:
    """For commands whose API answer is empty (204): a sentence, or `data` as JSON."""
    if json_output:
        print_json(data)
    else:
        typer.echo(message)


def note(message: str) -> None:
    """A remark for the person at the terminal, kept out of stdout so pipes stay clean."""
    typer.echo(message, err=True)


def print_members(members: Sequence[OrgMember]) -> None:
    """People with their role (a team member is an org member with a team)."""
    print_table(
        members,
        [
            ("EMAIL", lambda m: m.email),
            ("NAME", lambda m: m.full_name or m.username),
            ("ROLE", lambda m: m.role),
            ("JOINED", lambda m: m.joined_at),
            ("USER ID", lambda m: m.user_id),
        ],
        empty="No members.",
        keep_whole=("EMAIL",),
    )


def settings_or_exit() -> Settings:
    """The server's settings from the environment, or one line saying what is wrong with them.
    Only the commands that work on this machine's database need them (`serve`, `migrate`,
    `worker`, `operator add|list|remove`), so the server's config is imported here, not above."""
    from pydantic import ValidationError

    from tenantry.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        typer.echo(f"error: the settings are not usable: {problems}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
