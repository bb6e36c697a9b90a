"""The SDK's contract with the server, checked against the server's own OpenAPI document.

Each SDK method describes its request as a `Call` without sending it (see
`tenantry.client._calls`), so the whole SDK can be compared with `app.openapi()` offline: every
request is an operation the server declares, with declared query parameters and body fields, and
every field an SDK result model reads is in that operation's response schema (and is always there
when the model requires it). Renaming or dropping a field on the server, or a route, fails here
with the SDK method and the field named, rather than in a user's program. The reverse check keeps
the SDK complete: a new operation without an SDK method fails until it has one or is allow-listed.
"""

from __future__ import annotations

import inspect
import io
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from tenantry.client._calls import (
    Call,
    Download,
    Stream,
    _Route,
    json_object,
    model,
    models,
    nothing,
    paged,
    text,
)
from tenantry.client.api import Api
from tenantry.client.billing import _content
from tenantry.client.models import Page, Result

Schema = dict[str, Any]
Operation = tuple[str, str]  # (METHOD, path template), as the OpenAPI document keys it

# Operations the SDK deliberately has no method for. Each says why; remove an entry when the SDK
# gains the method (the test fails on a stale entry too, so the list stays true). /docs, /redoc
# and /openapi.json are not operations of the document, and /healthz, /readyz and /metrics have
# SDK methods, so none of them is listed.
NOT_IN_SDK: dict[Operation, str] = {
    # Called by Stripe, signed with the webhook secret; never by a Tenantry user.
    ("POST", "/webhooks/stripe"): "provider webhook",
    # LiteLLM's generic logging callback posts its own payload here; Tenantry's SDK reports
    # calls through `record_llm_calls` (and `tenantry.integrations.litellm`).
    ("POST", "/api/v1/integrations/litellm"): "LiteLLM's logger",
    # Where an identity provider sends a person's browser back; never called by a program.
    ("GET", "/api/v1/auth/sso/oidc/callback"): "identity provider's redirect",
    ("POST", "/api/v1/auth/sso/saml/{connection}/acs"): "identity provider's form post",
    ("GET", "/api/v1/auth/sso/saml/{connection}/metadata"): "read by the identity provider",
}

# SDK methods whose answer the server leaves undescribed (`{}`), so their result model cannot be
# compared with it. Each is a gap on the server's side; the test fails once the server describes
# the answer, so the entry is removed then.
UNDESCRIBED_ANSWERS: dict[str, str] = {
    # `GET /readyz` answers a hand-made JSONResponse (200, or 503 with the same fields), which
    # FastAPI cannot describe; `Readiness` (status, database) is checked by
    # tests/client/test_client.py.
    "readyz": "GET /readyz declares no response model",
}

# Parsers that read no JSON object: nothing to compare with a response schema.
READERS_WITHOUT_MODEL: frozenset[Callable[..., Any]] = frozenset(
    {nothing, text, json_object, _content}
)

# A fixed moment for `datetime` arguments; its value does not matter, only that it is one.
MOMENT = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

# Arguments whose type alone does not give the value that makes the SDK send the most: the
# three-part resource (a team-owned one) is the form that also sends `team_id`.
SPECIAL_ARGUMENTS: dict[str, Any] = {
    "resource": ("model", "x", "x"),
}


# ---- the SDK's methods and the calls they describe ----


@dataclass(frozen=True)
class SdkMethod:
    name: str
    build: Callable[..., Any]  # the describing function: (api, *args) -> Call | Stream | Download
    paged: bool  # an `iter_*` walking pages: its later requests add `cursor`


def sdk_methods() -> list[SdkMethod]:
    """Every route method of the SDK, found on `Api` and its mixins through their descriptors,
    so a method added anywhere is checked without being listed here."""
    found: list[SdkMethod] = []
    for name in sorted(dir(Api)):
        attr = inspect.getattr_static(Api, name)
        if isinstance(attr, _Route):
            found.append(SdkMethod(name, attr.build, paged=False))
        elif isinstance(attr, paged):
            found.append(SdkMethod(name, attr.build, paged=True))
    return found


def placeholder(annotation: Any) -> Any:
    """A value of the annotated type. Optional parameters get one too, and flags are True, so
    the call sends every query parameter and body field the method can send."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is Any or annotation is str:
        return "x"
    if annotation is bool:
        return True
    if annotation is int:
        return 1
    if annotation is float:
        return 1.5
    if annotation is bytes:
        return b"x"
    if annotation is Decimal:
        return Decimal("1")
    if annotation is datetime:
        return MOMENT
    if annotation is date:
        return MOMENT.date()
    if origin is Literal:
        return args[0]
    if origin in (Union, types.UnionType):
        return placeholder(next(arg for arg in args if arg is not type(None)))
    if origin is list:
        return [placeholder(args[0])]
    if origin is dict:
        return {placeholder(args[0]): placeholder(args[1])}
    if origin is tuple:
        return tuple(placeholder(arg) for arg in args)
    if origin is typing.IO:
        return io.BytesIO()
    raise TypeError(f"no placeholder for {annotation!r}: add the parameter to SPECIAL_ARGUMENTS")


def describe(method: SdkMethod) -> Call[Any]:
    """The request `method` makes when every parameter is given (its later pages, if paged)."""
    api = Api("http://sdk.invalid", "token", refresh_token="refresh")
    hints = get_type_hints(method.build)
    arguments = {
        name: SPECIAL_ARGUMENTS[name] if name in SPECIAL_ARGUMENTS else placeholder(hints[name])
        for name in list(inspect.signature(method.build).parameters)[1:]  # after `self`
    }
    described = method.build(api, **arguments)
    call = described.call if isinstance(described, Stream | Download) else described
    assert isinstance(call, Call), f"{method.name} describes {described!r}, not a Call"
    return call.page_after("x") if method.paged else call


def result_type(parse: Callable[..., Any]) -> Any | None:
    """What `parse` reads the answer into: `X` for `model(X)`, `list[X]` for `models(X)`, None
    for a reader of no JSON object. Read from the closure the helper made, so the helpers need
    not change for the test."""
    if parse in READERS_WITHOUT_MODEL:
        return None
    cells = {
        name: cell.cell_contents
        for name, cell in zip(parse.__code__.co_freevars, parse.__closure__ or (), strict=True)
    }
    if parse.__qualname__ == model(Result).__qualname__:
        return cells["cls"]
    if parse.__qualname__ == models(Result).__qualname__:
        # `models` keeps only its TypeAdapter of `list[X]`; the adapter keeps the type.
        return cells["adapter"]._type
    raise AssertionError(
        f"unknown parser {parse.__qualname__}: teach result_type what it reads, or add it to "
        "READERS_WITHOUT_MODEL"
    )


# ---- the OpenAPI document ----


def matches(template: str, path: str) -> bool:
    """Whether a concrete path is one of the template's: `{param}` is any one segment."""
    wanted, given = template.split("/"), path.split("/")
    return len(wanted) == len(given) and all(
        w == g or (w.startswith("{") and w.endswith("}") and g != "")
        for w, g in zip(wanted, given, strict=True)
    )


def find_operation(document: Schema, method: str, path: str) -> tuple[str, Schema] | None:
    """The operation serving `method path`: of the matching templates, the most literal one
    (as the router would pick `/users/me/export` over `/users/{user_id}/export`)."""
    found = [
        (template, operations[method.lower()])
        for template, operations in document["paths"].items()
        if method.lower() in operations and matches(template, path)
    ]
    if not found:
        return None
    return max(found, key=lambda item: sum(not s.startswith("{") for s in item[0].split("/")))


def resolve(document: Schema, schema: Schema) -> Schema:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def variants(document: Schema, schema: Schema) -> list[Schema]:
    """The alternatives a value may take, `$ref`s resolved and `anyOf`/`oneOf`/`allOf` of one
    flattened; `{"type": "null"}` among them when the value may be null."""
    schema = resolve(document, schema)
    if len(schema.get("allOf", ())) == 1:
        return variants(document, schema["allOf"][0])
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        return [v for alternative in alternatives for v in variants(document, alternative)]
    return [schema]


def nullable(options: list[Schema]) -> bool:
    return any(option.get("type") == "null" for option in options)


def object_schema(options: list[Schema]) -> Schema | None:
    return next(
        (o for o in options if o.get("type") == "object" or "properties" in o),
        None,
    )


def json_types(options: list[Schema]) -> set[str] | None:
    """The JSON types the schema allows, or None when it does not say (`{}`: anything)."""
    found: set[str] = set()
    for option in options:
        if "type" not in option:
            return None
        found.add(option["type"])
    return found


# What JSON types each SDK leaf type reads without failing (pydantic's lax mode aside: the SDK
# should not depend on the server sending `"3"` for an int).
LEAF_TYPES: dict[Any, set[str]] = {
    str: {"string"},
    datetime: {"string"},
    int: {"integer"},
    float: {"number", "integer"},
    bool: {"boolean"},
}


def accepts_none(annotation: Any) -> bool:
    return annotation is Any or (
        get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)
    )


def strip_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


@dataclass(frozen=True)
class Place:
    """Where in the answer a value is: its JSON path, and the SDK model field that reads it."""

    path: str = ""
    field: str = ""

    def __str__(self) -> str:
        return f"{self.path or '(the answer)'}" + (f" ({self.field})" if self.field else "")

    def child(self, key: str, field: str | None = None) -> Place:
        """`key` of an object, or `[]` (an element of a list) or `{}` (a value of a map)."""
        if key in ("[]", "{}"):
            path = self.path + key
        else:
            path = f"{self.path}.{key}" if self.path else key
        return Place(path, self.field if field is None else field)


def shown(options: list[Schema]) -> str:
    """A schema in a few words for a message: its title or its types."""
    return " | ".join(str(o.get("title") or o.get("type") or "any") for o in options) or "nothing"


def compare(document: Schema, annotation: Any, schema: Schema, at: Place) -> list[str]:
    """How what the SDK reads at `at` (a type) fails to fit what the server declares there (a
    schema): fields missing or optional on the server, null where the SDK cannot take it, and
    JSON types the SDK cannot read. Nested models, lists and maps are followed."""
    options = variants(document, schema)
    problems: list[str] = []
    if nullable(options) and not accepts_none(annotation):
        problems.append(f"{at}: the server may send null, the SDK's {annotation!r} cannot take it")
    annotation = strip_none(annotation)
    options = [option for option in options if option.get("type") != "null"]
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        problems += compare_model(document, annotation, options, at)
    elif origin is list:
        array = next((o for o in options if o.get("type") == "array"), None)
        if array is None:
            problems.append(f"{at}: the SDK reads a list, the server declares {shown(options)}")
        else:
            problems += compare(document, args[0], array.get("items", {}), at.child("[]"))
    elif origin is dict:
        mapping = object_schema(options)
        if mapping is None:
            problems.append(f"{at}: the SDK reads an object, the server declares {shown(options)}")
        elif isinstance(mapping.get("additionalProperties"), dict):
            values = mapping["additionalProperties"]
            problems += compare(document, args[1], values, at.child("{}"))
    elif annotation in LEAF_TYPES:
        declared = json_types(options)
        if declared is not None and not declared <= LEAF_TYPES[annotation]:
            problems.append(
                f"{at}: the SDK reads {annotation.__name__}, the server declares {sorted(declared)}"
            )
    return problems


def compare_model(
    document: Schema, cls: type[BaseModel], options: list[Schema], at: Place
) -> list[str]:
    found = object_schema(options)
    if found is None:
        return [f"{at}: the SDK reads a {cls.__name__}, the server declares {shown(options)}"]
    properties: Schema = found.get("properties", {})
    required = set(found.get("required", ()))
    # A map (`dict[str, X]`, no properties) names no fields: the SDK's can only be checked for
    # the map's value type.
    free_values = found.get("additionalProperties") if not properties else None
    title = found.get("title", "response schema")
    problems: list[str] = []
    for name, field in cls.model_fields.items():
        key = field.alias or name
        where = at.child(key, f"{cls.__name__}.{name}")
        if isinstance(free_values, dict):
            problems += compare(document, field.annotation, free_values, where)
            continue
        if key not in properties:
            problems.append(f"{where}: not in the server's {title}")
            continue
        if field.is_required() and key not in required:
            problems.append(f"{where}: required by the SDK, optional in the server's {title}")
        problems += compare(document, field.annotation, properties[key], where)
    return problems


def success_schema(operation: Schema) -> Schema | None:
    for status in ("200", "201", "202"):
        response = operation.get("responses", {}).get(status)
        if response is not None:
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            return dict(schema) if schema is not None else None
    return None


def call_problems(
    document: Schema, name: str, call: Call[Any]
) -> tuple[Operation | None, list[str]]:
    """The operation `call` reaches, and every way it breaks the contract, each message naming
    the SDK method (`name`) and the parameter or field."""
    found = find_operation(document, call.method, call.path)
    if found is None:
        return None, [f"{name}: {call.method} {call.path} is no operation of the server"]
    template, operation = found
    label = f"{name} ({call.method} {template})"
    problems: list[str] = []

    query = {p["name"]: p for p in operation.get("parameters", ()) if p["in"] == "query"}
    problems += [
        f"{label}: query parameter {key!r} is not declared by the server"
        for key in call.params
        if key not in query
    ]
    problems += [
        f"{label}: the server requires query parameter {key!r}, the SDK never sends it"
        for key, parameter in query.items()
        if parameter.get("required") and key not in call.params
    ]

    body = operation.get("requestBody")
    if call.body is not None and body is None:
        problems.append(f"{label}: the SDK sends a body, the server takes none")
    elif call.body is None and body is not None and body.get("required"):
        problems.append(f"{label}: the server requires a body, the SDK sends none")
    elif call.body is not None and body is not None:
        schema = body.get("content", {}).get("application/json", {}).get("schema", {})
        declared = object_schema(variants(document, schema))
        if declared is None or not isinstance(call.body, dict):
            problems.append(f"{label}: the body is not the JSON object the server takes")
        elif "properties" in declared:
            properties, title = declared["properties"], declared.get("title", "request body")
            problems += [
                f"{label}: body field {key!r} is not in the server's {title}"
                for key in call.body
                if key not in properties
            ]
            problems += [
                f"{label}: the server's {title} requires {key!r}, the SDK never sends it"
                for key in declared.get("required", ())
                if key not in call.body
            ]

    reads = result_type(call.parse)
    if reads is not None:
        schema = success_schema(operation)
        if name in UNDESCRIBED_ANSWERS:
            if schema:
                problems.append(
                    f"{label}: the server describes its answer now: remove {name!r} "
                    "from UNDESCRIBED_ANSWERS"
                )
        elif not schema:
            problems.append(f"{label}: the server declares no JSON response for the SDK's {reads}")
        else:
            problems += [
                f"{label}: response {p}" for p in compare(document, reads, schema, Place())
            ]
    return (call.method, template), problems


def operations(document: Schema) -> set[Operation]:
    return {
        (method.upper(), template)
        for template, methods in document["paths"].items()
        for method in methods
    }


def check_sdk(document: Schema) -> tuple[set[Operation], list[str]]:
    """The operations the SDK reaches, and every contract problem of every SDK method."""
    reached: set[Operation] = set()
    problems: list[str] = []
    for method in sdk_methods():
        operation, found = call_problems(document, method.name, describe(method))
        if operation is not None:
            reached.add(operation)
        problems += found
    return reached, problems


# ---- the tests ----


_documents: dict[str, Schema] = {}


@pytest.fixture
def openapi(app: FastAPI) -> Schema:
    """The app's OpenAPI document, made once per test process: it takes over a second to make,
    and it depends only on the code (routes and schemas), not on the test's database."""
    if "openapi" not in _documents:
        _documents["openapi"] = app.openapi()
    return _documents["openapi"]


def test_every_sdk_method_fits_the_servers_openapi(openapi: Schema) -> None:
    assert len(sdk_methods()) > 100  # the enumeration found the SDK, not an empty class
    _, problems = check_sdk(openapi)
    assert not problems, "the SDK and the server disagree:\n" + "\n".join(problems)


def test_every_operation_has_an_sdk_method_or_is_allow_listed(openapi: Schema) -> None:
    reached, _ = check_sdk(openapi)
    missing = operations(openapi) - reached
    new = sorted(missing - NOT_IN_SDK.keys())
    stale = sorted(NOT_IN_SDK.keys() - missing)
    assert not new, f"operations without an SDK method (add one, or to NOT_IN_SDK): {new}"
    assert not stale, f"NOT_IN_SDK entries that have an SDK method or no operation: {stale}"


# ---- the checker itself, on a tiny document, so a broken checker cannot pass silently ----

TINY: Schema = {
    "paths": {
        "/things/{thing}": {
            "patch": {
                "parameters": [
                    {"name": "thing", "in": "path", "required": True},
                    {"name": "verbose", "in": "query", "required": False},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/In"}}
                    },
                },
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Out"}}
                        }
                    }
                },
            },
        },
        "/things": {
            "get": {
                "parameters": [{"name": "cursor", "in": "query", "required": False}],
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Page"}}
                        }
                    }
                },
            },
        },
    },
    "components": {
        "schemas": {
            "In": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
            "Out": {
                "type": "object",
                "title": "Out",
                "properties": {
                    "id": {"type": "string"},
                    "size": {"type": "integer"},
                    "label": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
                "required": ["id", "size"],
            },
            "Page": {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Out"}},
                    "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
                "required": ["items", "next_cursor"],
            },
        }
    },
}


class Thing(Result):
    id: str
    size: int
    label: str | None = None


class RenamedThing(Result):
    ident: str  # the server says `id`
    size: int


class StrictThing(Result):
    id: str
    size: str  # the server sends an integer
    label: str  # required, but the server may leave it out or send null


def _problems(call: Call[Any]) -> list[str]:
    return call_problems(TINY, "sdk_method", call)[1]


def _patch(parse: Callable[..., Any], **changes: Any) -> Call[Any]:
    fields: dict[str, Any] = {"params": {"verbose": "1"}, "body": {"name": "x"}, **changes}
    return Call("PATCH", "/things/t1", parse, **fields)


def test_checker_reads_paths_and_parsers() -> None:
    assert matches("/things/{thing}", "/things/t1")
    assert not matches("/things/{thing}", "/things/")
    assert not matches("/things/{thing}", "/things/t1/more")
    assert result_type(model(Page[Thing])) is Page[Thing]
    assert result_type(models(Thing)) == list[Thing]
    assert result_type(nothing) is None


def test_checker_accepts_a_call_that_fits() -> None:
    assert _problems(_patch(model(Thing))) == []
    assert _problems(Call("GET", "/things", model(Page[Thing]), params={"cursor": "c"})) == []


def test_checker_names_method_and_field_of_each_mismatch() -> None:
    def only(call: Call[Any]) -> str:
        (problem,) = _problems(call)
        assert problem.startswith("sdk_method")
        return problem

    assert "PATCH /elsewhere/t1" in only(Call("PATCH", "/elsewhere/t1", nothing))
    assert "'quiet'" in only(_patch(nothing, params={"quiet": "1"}))
    assert "'colour'" in only(_patch(nothing, body={"name": "x", "colour": "red"}))
    assert "requires 'name'" in only(_patch(nothing, body={}))
    assert "sends none" in only(_patch(nothing, body=None))
    assert "ident (RenamedThing.ident): not in the server's Out" in only(
        _patch(model(RenamedThing))
    )
    items = only(Call("GET", "/things", model(Page[RenamedThing])))
    assert "items[].ident (RenamedThing.ident): not in the server's Out" in items


def test_checker_reports_optional_nullable_and_wrongly_typed_fields() -> None:
    problems = "\n".join(_problems(_patch(model(StrictThing))))
    assert "size (StrictThing.size): the SDK reads str" in problems
    assert "label (StrictThing.label): required by the SDK, optional" in problems
    assert "label (StrictThing.label): the server may send null" in problems


def test_every_describing_function_gets_arguments() -> None:
    # Without the app: a signature the placeholders cannot fill fails here on its own.
    described: Iterator[Call[Any]] = (describe(method) for method in sdk_methods())
    assert all(call.path.startswith("/") for call in described)
