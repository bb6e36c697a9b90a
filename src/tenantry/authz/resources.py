"""The resource types grants and questions can name, and how each is found in its org.

`team` is a real resource (a row of `teams`). Team-owned types — models, experiments, pattern
libraries, … — belong to later domains whose tables may not exist yet. Each type is registered
with its id prefix and, once its domain exists, a resolver (id → the org and team that own it).
Until a resolver is registered, a grant or question on such a resource names its team, and the
id is checked only for its shape (`mdl_…` and so on).

A domain plugs in with:

    register_resolver("model", lambda session, org_id, resource_id: ...)  # -> team id or None
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy.orm import Session

from tenantry.kit.ids import has_prefix

# (session, org id, resource id) → the id of the team in that org that owns it, or None.
Resolver = Callable[[Session, str, str], str | None]


@dataclass
class ResourceType:
    name: str
    id_prefix: str
    resolver: Resolver | None = None


RESOURCE_TYPES: Final[dict[str, ResourceType]] = {
    t.name: t
    for t in (
        ResourceType("team", "team"),
        ResourceType("model", "mdl"),
        ResourceType("experiment", "exp"),
        ResourceType("run", "run"),
        ResourceType("dataset", "ds"),
        ResourceType("pattern_library", "plib"),
        ResourceType("deployment", "dep"),
    )
}
TEAM_OWNED: Final = tuple(name for name in RESOURCE_TYPES if name != "team")


def register_resolver(name: str, resolver: Resolver) -> None:
    """A domain that owns resources of `name` says how to find one's org and team."""
    RESOURCE_TYPES[name].resolver = resolver


def is_known_type(name: str) -> bool:
    return name in RESOURCE_TYPES


def has_valid_shape(resource_type: str, resource_id: str) -> bool:
    kind = RESOURCE_TYPES.get(resource_type)
    return kind is not None and has_prefix(resource_id, kind.id_prefix)


def resolver_of(resource_type: str) -> Resolver | None:
    kind = RESOURCE_TYPES.get(resource_type)
    return kind.resolver if kind is not None else None
