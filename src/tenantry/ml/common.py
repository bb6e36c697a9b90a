"""What every rule of the model registry and experiment tracking shares: the team a request acts
in, the time in MLflow's milliseconds, the checks of keys and values, and pages of a search."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.kit.context import Ctx
from tenantry.kit.errors import InvalidValue, NotFound
from tenantry.ml import repository
from tenantry.tenancy import scope as tenancy
from tenantry.tenancy.scope import resolve_org

# MLflow's own limits, so that what one server takes the other takes too.
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_NAME = 500
MAX_RESULTS = 50_000
DEFAULT_RESULTS = 1000


@dataclass(frozen=True)
class TeamIn:
    """The team a request acts in: its id and its org's."""

    id: str
    org_id: str


def resolve_team(session: Session, principal: Principal, org_ref: str, team_ref: str) -> TeamIn:
    """The team an MLflow tracking URI names (`/mlflow/{org}/{team}`, each by id or slug),
    with tenancy's answers: 404 outside the principal's tenants, for a private team it is not
    in, and for an API key bound to another team."""
    org = resolve_org(session, principal, org_ref)
    found = repository.team_by_ref(session, org_id=org.id, ref=team_ref)
    if found is None:
        raise NotFound("Team not found")
    team = tenancy.resolve_team(session, principal, found[0])
    return TeamIn(team.id, team.org_id)


def now_ms(ctx: Ctx) -> int:
    return int(ctx.clock.now().timestamp() * 1000)


def allow(session: Session, principal: Principal, permission: Permission, team: TeamIn) -> None:
    authorize(session, principal, permission, org_id=team.org_id, team_id=team.id)


def check_key(key: Any, what: str = "key") -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise InvalidValue(f"A {what} must be a string of 1 to {MAX_KEY} characters")
    text: str = key
    if "\x00" in text or text.startswith("/") or ".." in text.split("/"):
        raise InvalidValue(f"Invalid {what} {text[:50]!r}")
    return text


def check_value(value: Any, limit: int, what: str = "value") -> str:
    text = "" if value is None else value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise InvalidValue(f"A {what} is at most {limit} characters; got {len(text)}")
    if "\x00" in text:
        raise InvalidValue(f"A {what} cannot hold a NUL character")
    return text


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise InvalidValue(f"{what} must be a non-empty string of at most {MAX_NAME} characters")
    if "\x00" in value:
        raise InvalidValue(f"{what} cannot hold a NUL character")
    return value


def check_int64(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidValue(f"{what} must be an integer")
    try:
        number = int(value)
    except ValueError:
        raise InvalidValue(f"{what} must be an integer") from None
    if not -(2**63) <= number < 2**63:
        raise InvalidValue(f"{what} is out of the int64 range")
    return number


def check_metric_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidValue("A metric value must be a number")
    try:
        number = float(value)
    except ValueError:
        raise InvalidValue("A metric value must be a number") from None
    if isinstance(value, int) and abs(value) > 2**63:
        raise InvalidValue("A metric value is out of range")
    return number if not math.isnan(number) else math.nan


def max_results(value: Any, default: int = DEFAULT_RESULTS, limit: int = MAX_RESULTS) -> int:
    if value is None or value == "":
        return default
    number = check_int64(value, "max_results")
    if number < 1 or number > limit:
        raise InvalidValue(f"max_results must be between 1 and {limit}")
    return number


def page_offset(token: Any) -> int:
    """The offset a page token names (tokens are opaque to the client)."""
    if token is None or token == "":
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(str(token).encode() + b"=="))
        offset = int(decoded["offset"])
    except (ValueError, KeyError, TypeError):
        raise InvalidValue("Invalid page_token") from None
    if offset < 0:
        raise InvalidValue("Invalid page_token")
    return offset


def next_token(offset: int, taken: int, more: bool) -> str | None:
    """The token of the page after one of `taken` results from `offset`, if there is one."""
    if not more:
        return None
    raw = json.dumps({"offset": offset + taken}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
