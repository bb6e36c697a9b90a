"""Parsing of option values people type: durations (`30d`), times, comma lists."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tenantry.cli.output import CliError

_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$", re.IGNORECASE)
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def now() -> datetime:
    return datetime.now(UTC)


def duration(text: str, *, option: str) -> timedelta:
    """`30d`, `12h` or `90m` as a timedelta."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise CliError(f"{option}: expected a duration like 30d, 12h or 90m, not {text!r}")
    return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})


def expires_at(text: str | None) -> datetime | None:
    """`--expires 30d` as the moment 30 days from now."""
    return None if text is None else now() + duration(text, option="--expires")


def moment(text: str | None, *, option: str) -> datetime | None:
    """An ISO 8601 time (UTC when no zone is given), or a duration meaning that long ago."""
    if text is None:
        return None
    if _DURATION.match(text):
        return now() - duration(text, option=option)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"{option}: expected an ISO time like 2026-01-31T09:00 or a duration like 7d, "
            f"not {text!r}"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def comma_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]
