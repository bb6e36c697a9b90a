"""Base classes of request and response bodies.

Requests forbid unknown fields (no mass assignment, no silently ignored typos) and bound every
string; responses are built from ORM rows.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Email = Annotated[EmailStr, StringConstraints(max_length=254)]
Password = Annotated[str, Field(min_length=1, max_length=256)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]
SETTINGS_MAX_BYTES = 16_384


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def check_settings_size(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value)) > SETTINGS_MAX_BYTES:
        raise ValueError(f"settings must be at most {SETTINGS_MAX_BYTES} bytes of JSON")
    return value
