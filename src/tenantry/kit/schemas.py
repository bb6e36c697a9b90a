"""Base classes of request and response bodies.

Requests forbid unknown fields (no mass assignment, no silently ignored typos) and bound every
string; responses are built from ORM rows.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Email = Annotated[EmailStr, StringConstraints(max_length=254)]
Password = Annotated[str, Field(min_length=1, max_length=256)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]
SETTINGS_MAX_BYTES = 16_384


def check_storable(value: Any) -> None:
    """Refuse what strict JSON or PostgreSQL cannot hold (NaN/Infinity, NUL characters), which
    Python's JSON parser lets through; walked without recursion, so depth cannot crash it."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("text must not contain NUL characters")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("numbers must be finite")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set):
            pending.extend(item)
        elif isinstance(item, Input):
            continue  # a nested input checked its own values when it was made
        elif isinstance(item, BaseModel):
            pending.extend(item.__dict__.values())


# Validation context of a body already known to be storable (see `kit.http.parse_json_body`).
STORABLE: Final = {"tenantry.storable": True}


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    @model_validator(mode="after")
    def _only_storable_values(self, info: ValidationInfo) -> Self:
        if info.context is not None and info.context.get("tenantry.storable"):
            return self
        check_storable(list(self.__dict__.values()))
        return self


# The config of a part of an `Input` body repeated many times (a batch's events), given to a
# TypedDict: the same rules, but no model instance and no Python check of its own per item, which
# cost more than parsing it. The `Input` that holds it walks its values.
INPUT_ITEM_CONFIG: Final = ConfigDict(extra="forbid", str_max_length=10_000)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def check_settings_size(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value)) > SETTINGS_MAX_BYTES:
        raise ValueError(f"settings must be at most {SETTINGS_MAX_BYTES} bytes of JSON")
    return value
