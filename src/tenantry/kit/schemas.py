"""Base classes of request and response bodies.

Requests forbid unknown fields (no mass assignment, no silently ignored typos) and bound every
string; responses are built from ORM rows.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    GetPydanticSchema,
    StringConstraints,
    ValidationInfo,
    model_validator,
)
from pydantic_core import core_schema

from tenantry.kit.money import UNIT_PRICE_PLACES

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Email = Annotated[EmailStr, StringConstraints(max_length=254)]
Password = Annotated[str, Field(min_length=1, max_length=256)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]
SETTINGS_MAX_BYTES = 16_384


def left_out(**constraints: Any) -> Any:
    """The default of a field of a PATCH body whose value is never null: left out, it changes
    nothing; sent as `null`, it is a 422 naming it (its type has no None). The OpenAPI document
    shows no `null` default. A field where null means "clear" is typed `X | None = None` instead.
    """
    return Field(default=None, json_schema_extra=_no_default, **constraints)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# ---- decimals and timestamps, read strictly ----
#
# Both are checked by pydantic's core alone (no Python call per value): the hot lanes read a
# thousand quantities and timestamps per batch.

# A decimal string is written as a JSON number would be: digits without leading zeros, an optional
# fraction and exponent, a minus only before a number other than zero (and only where negatives
# are allowed). No spaces, underscores, `+`, `-0`, `NaN`, hexadecimal or digits of other
# scripts, all of which Python's `Decimal()` would read.
_MANTISSA = r"(0|[1-9][0-9]*)(\.[0-9]+)?"
_NONZERO = r"([1-9][0-9]*(\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)"
_EXPONENT = r"([eE][+-]?[0-9]+)?"
DECIMAL_TEXT: Final = rf"^(-{_NONZERO}|{_MANTISSA}){_EXPONENT}$"
UNSIGNED_DECIMAL_TEXT: Final = rf"^{_MANTISSA}{_EXPONENT}$"
# RFC 3339's date-time: a date, `T`, a time, and a zone (`Z` or an offset).
RFC3339: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _decimal_schema(signed: bool, limits: dict[str, Any]) -> core_schema.CoreSchema:
    pattern = DECIMAL_TEXT if signed else UNSIGNED_DECIMAL_TEXT
    text = core_schema.chain_schema(
        [core_schema.str_schema(strict=True, pattern=pattern), core_schema.decimal_schema()]
    )
    number = core_schema.chain_schema(
        [
            core_schema.union_schema(
                [
                    core_schema.int_schema(strict=True),  # exact, however many digits
                    core_schema.float_schema(strict=True, allow_inf_nan=False),
                ],
                mode="left_to_right",
            ),
            core_schema.decimal_schema(),
        ]
    )
    # Strings first: quantities travel as strings, and a branch that fails costs more than one
    # that is not tried (building its error).
    shape = "a decimal" if signed else "a decimal of no sign"
    written = core_schema.custom_error_schema(
        core_schema.json_or_python_schema(
            json_schema=core_schema.union_schema([text, number], mode="left_to_right"),
            python_schema=core_schema.union_schema(
                [text, number, core_schema.is_instance_schema(Decimal)], mode="left_to_right"
            ),
        ),
        custom_error_type="decimal_format",
        custom_error_message=f"Input should be {shape}: a JSON number, or a string written as "
        'one ("12.5"), without spaces or underscores',
    )
    if not limits:
        return written
    return core_schema.chain_schema([written, core_schema.decimal_schema(**limits)])


def _decimal_json_schema(signed: bool, limits: dict[str, Any]) -> dict[str, Any]:
    words = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}
    number: dict[str, Any] = {"type": "number"}
    for key, word in words.items():
        if limits.get(key) is not None:
            number[word] = float(limits[key])
    text = {"type": "string", "pattern": DECIMAL_TEXT if signed else UNSIGNED_DECIMAL_TEXT}
    return {"anyOf": [number, text]}


def decimal_in(
    *,
    ge: Decimal | int | None = None,
    gt: Decimal | int | None = None,
    le: Decimal | int | None = None,
    lt: Decimal | int | None = None,
    decimal_places: int | None = None,
    max_digits: int | None = None,
) -> Any:
    """A decimal of a request: a JSON number, or a string written as one (`"12.5"`). With a
    lower bound of zero or more, a string has no sign (`"-0"` is refused)."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    limits: dict[str, Any] = {k: Decimal(v) for k, v in bounds.items() if v is not None}
    if decimal_places is not None:
        limits["decimal_places"] = decimal_places
    if max_digits is not None:
        limits["max_digits"] = max_digits
    floor = ge if ge is not None else gt
    signed = floor is None or floor < 0
    return GetPydanticSchema(
        lambda _source, _handler: _decimal_schema(signed, limits),
        lambda _schema, _handler: _decimal_json_schema(signed, limits),
    )


# A decimal of any sign, with no bounds of its own.
DecimalIn = Annotated[Decimal, decimal_in()]
# A price or rate per unit: not negative, at most `UNIT_PRICE_PLACES` decimal places.
UnitPrice = Annotated[Decimal, decimal_in(ge=0, max_digits=18, decimal_places=UNIT_PRICE_PLACES)]


def _timestamp_schema() -> core_schema.CoreSchema:
    text = core_schema.chain_schema(
        [core_schema.str_schema(strict=True, pattern=RFC3339), core_schema.datetime_schema()]
    )
    return core_schema.custom_error_schema(
        core_schema.json_or_python_schema(
            json_schema=text,
            python_schema=core_schema.union_schema(
                [core_schema.datetime_schema(strict=True, tz_constraint="aware"), text],
                mode="left_to_right",
            ),
        ),
        custom_error_type="timestamp_format",
        custom_error_message="Input should be an RFC 3339 timestamp with a zone, "
        "such as 2026-01-31T09:30:00Z",
    )


# A point in time of a request (body or query): an RFC 3339 string with its zone, never a number
# of seconds, a date alone or a time without zone.
Timestamp = Annotated[
    datetime,
    GetPydanticSchema(
        lambda _source, _handler: _timestamp_schema(),
        lambda _schema, _handler: {"type": "string", "format": "date-time"},
    ),
]


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
