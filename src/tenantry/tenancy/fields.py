"""What organizations and teams share: slugs (made from a name, or checked) and the audit summary
of a change to their fields (personal ones masked)."""

from __future__ import annotations

import re
from typing import Any

from tenantry.kit.errors import Unprocessable

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:50].strip("-") or "org"


def free_slug(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def check_slug(slug: str) -> str:
    if not SLUG_PATTERN.match(slug):
        raise Unprocessable(
            "Slug must be 1-64 lowercase letters, digits and inner hyphens", code="invalid_slug"
        )
    return slug


# Fields that may hold a person's details: the trail records that they changed, not to what.
PERSONAL_FIELDS = frozenset({"billing_email"})


def before_after(obj: Any, changes: dict[str, Any]) -> dict[str, Any]:
    def shown(key: str, value: Any) -> Any:
        return "(changed)" if key in PERSONAL_FIELDS else value

    return {
        "before": {k: shown(k, getattr(obj, k)) for k in changes},
        "after": {k: shown(k, v) for k, v in changes.items()},
    }
