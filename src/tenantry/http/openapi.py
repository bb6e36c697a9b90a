"""The OpenAPI document as the API keeps it: every status an operation can send, with the
problem+json schema; who may call it (`securitySchemes`, applied per operation); examples of the
main request bodies.

The statuses come from what a route is made of, in one place (`statuses_of`): authenticating
(401, 402 and 429 from the limiter, 403), a path parameter (404), a body (400, 413, 415, 422),
a write (409, 413, 422), the database (503). What only a service can refuse and no dependency
shows is listed by operation in `REFUSALS`. tests/kit/test_openapi.py walks the route table and
provokes the statuses each route can send; a status it gets that the document does not list
fails it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from tenantry.http.work import unit_of_work
from tenantry.kit.context import MUTATING_METHODS, authenticates
from tenantry.kit.errors import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE

LOGIN_PATH = "/api/v1/auth/login"

# One name per kind of credential; both travel as `Authorization: Bearer …`.
ACCESS_TOKEN, API_KEY, PASSWORD_LOGIN = "accessToken", "apiKey", "passwordLogin"

SECURITY_SCHEMES: dict[str, Any] = {
    ACCESS_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A user's access token (a JWT) from `POST /api/v1/auth/login`, "
        "`/auth/signup`, `/auth/refresh` or `/onboard`, sent as `Authorization: Bearer <token>`. "
        "It expires after `expires_in` seconds; refresh it with the refresh token.",
    },
    API_KEY: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
        "description": "An org's API key (shown once, by `POST /api/v1/orgs/{org}/api-keys`), "
        "sent the same way: `Authorization: Bearer <key>`. It acts in its org (and its team, if "
        "it has one) with at most its creator's permissions.",
    },
    PASSWORD_LOGIN: {
        "type": "oauth2",
        "description": "Sign in with an email and password (the OAuth2 password grant: "
        "`username` is the email); the access token it returns is then sent as a bearer token.",
        "flows": {"password": {"tokenUrl": LOGIN_PATH, "scopes": {}}},
    },
}
AUTHENTICATED: list[dict[str, list[str]]] = [
    {ACCESS_TOKEN: []},
    {API_KEY: []},
    {PASSWORD_LOGIN: []},
]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "Problem details (RFC 9457). `code` is stable; a client branches on it.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "examples": [PROBLEM_TYPE_BASE + "not_found"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "examples": ["not_found"]},
        "instance": {"type": "string", "description": "The path of the request"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "With `validation_error` and `malformed_json`: each value refused",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

# What each status means on any route; a route that declared its own description keeps it.
MEANING: dict[int, str] = {
    400: "`malformed_json`, `invalid_value` (a value that cannot be stored, such as a NUL "
    "character), `invalid_cursor`, or another `bad_request`",
    401: "`unauthenticated`: no valid access token or API key (`invalid_token`, "
    "`invalid_api_key`, `api_key_expired`, `session_ended`, `account_inactive`)",
    402: "`quota_exceeded`: a hard quota of the org's plan is used up (the answer names the "
    "quota and the plan to upgrade to)",
    403: "`forbidden`: the caller lacks the permission (named in `missing_permission`), or the "
    "org is suspended",
    404: "`not_found`: no such thing among the caller's tenants (another tenant's things answer "
    "404 too)",
    409: "`conflict`: the change clashes with the current state (a name taken, "
    "`idempotency_key_in_use`, `concurrent_conflict`); nothing was written",
    410: "`gone`: it existed, but no longer can be used",
    413: "`payload_too_large`: the body is over the server's limit",
    415: "`unsupported_media_type`: send the body as `Content-Type: application/json`",
    422: "`validation_error` (each refused value in `errors`) or a rule of the request's domain; "
    "nothing was written",
    429: "`rate_limited`: wait `Retry-After` seconds",
    500: "`internal_error`: logged with the `request_id`",
    502: "`payment_provider_error`: the payment provider refused or could not be reached",
    503: "`database_unavailable`: the database is busy or unreachable; nothing was written, "
    "retry after `Retry-After` seconds",
}

RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}}
HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: RETRY_AFTER,
    503: RETRY_AFTER,
}

# The sign-in routes (public, under this prefix) refuse the credential they are given (a
# password, a refresh token, a sign-in code or assertion: 401) and repeated failures (429).
SIGN_IN_PREFIX, SIGN_IN_REFUSALS = "/api/v1/auth/", frozenset({401, 429})
# Refusals that only a service makes (no dependency of the route shows them), by operation.
REFUSALS: dict[tuple[str, str], frozenset[int]] = {
    ("POST", "/api/v1/auth/sso/start"): frozenset({404}),  # no connection for that domain
    # an org requires SSO, or its security policy says the password is too old
    ("POST", "/api/v1/auth/login"): frozenset({403}),
    ("POST", "/api/v1/invitations/{token}/accept"): frozenset({410}),
    ("POST", "/api/v1/invitations/{token}/decline"): frozenset({410}),
    ("POST", "/api/v1/teams/{team}/runs/leases/{lease_id}/heartbeat"): frozenset({410}),
    ("DELETE", "/api/v1/teams/{team}/runs/leases/{lease_id}"): frozenset({410}),
    ("POST", "/webhooks/stripe"): frozenset({400}),
}
# Billing's routes that call the payment provider can relay its refusal.
PROVIDER_TAG = "billing"

# Examples of the main request bodies: what a first call looks like.
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/onboard"): {
        "company_name": "Acme Robotics",
        "admin_email": "ada@acme.example",
        "admin_password": "correct horse battery staple",
        "admin_name": "Ada Lovelace",
    },
    ("POST", "/api/v1/orgs"): {
        "name": "Acme Research",
        "slug": "acme-research",
        "billing_email": "billing@acme.example",
    },
    ("POST", "/api/v1/orgs/{org}/invitations"): {"email": "grace@acme.example", "role": "member"},
    ("POST", "/api/v1/orgs/{org}/api-keys"): {
        "name": "ci pipeline",
        "permissions": ["usage:write"],
        "expires_at": "2030-01-01T00:00:00Z",
    },
    ("POST", "/api/v1/usage/events"): {
        "id": "evt_2024_06_01_0001",
        "meter": "llm_input_tokens",
        "quantity": 1250,
        "timestamp": "2030-01-01T12:00:00Z",
        "dimensions": {"provider": "openai", "model": "gpt-4o"},
    },
    ("POST", "/api/v1/admission"): {
        "team": "research",
        "action": "llm.generate",
        "estimate": {"llm_input_tokens": 2000},
        "provider": "openai",
        "model": "gpt-4o",
    },
    ("PUT", "/api/v1/orgs/{org}/subscription"): {"plan": "pro", "cycle": "monthly"},
}


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, full path, route) for every operation of the document."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in sorted(context.methods or ()):
                # As the document names it: `{path}` for a `{path:path}` parameter.
                yield method, str(context.path_format), route


def _calls(route: APIRoute) -> Iterator[Callable[..., Any]]:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call is not None:
            yield dependant.call
        pending.extend(dependant.dependencies)


def statuses_of(method: str, path: str, route: APIRoute, operation: dict[str, Any]) -> set[int]:
    """Every error status the operation can send, from what the route is made of."""
    found = {500}
    has_body = "requestBody" in operation or method in MUTATING_METHODS
    parameters = operation.get("parameters", [])
    if parameters or has_body:
        found |= {400, 422}  # refused values, and values a database cannot hold (400)
    if has_body:
        # A JSON body: malformed (400), too large, of another media type, or invalid.
        found |= {400, 413, 415, 422}
    if method in MUTATING_METHODS:
        # A clash with what is stored, or an Idempotency-Key reused with another body.
        found |= {409, 422}
    if any(p.get("in") == "path" for p in parameters):
        found.add(404)
    authenticated = authenticates(route)
    if authenticated:
        # The credential (401), the org's rate limits and daily API-call quota (429, 402), its
        # permissions or a suspended org (403), and things named in the body (404).
        found |= {401, 402, 403, 429}
        if has_body:
            found.add(404)
    if authenticated or unit_of_work in set(_calls(route)):
        found.add(503)
    if PROVIDER_TAG in (operation.get("tags") or []) and method in MUTATING_METHODS:
        found.add(502)
    if not authenticated and path.startswith(SIGN_IN_PREFIX):
        found |= SIGN_IN_REFUSALS
    return found | REFUSALS.get((method, path), frozenset())


# The shared answers, `components.responses`, by status.
RESPONSE_NAMES: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthenticated",
    402: "QuotaExceeded",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Gone",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "Unprocessable",
    429: "RateLimited",
    500: "InternalError",
    502: "PaymentProviderError",
    503: "ServiceUnavailable",
}


def _problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Problem"}
    response: dict[str, Any] = {
        "description": description or MEANING[status],
        "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
    }
    if status in HEADERS:
        response["headers"] = copy.deepcopy(HEADERS[status])
    return response


def _answer(status: int, declared: dict[str, Any] | None) -> dict[str, Any]:
    """The operation's answer with `status`: the shared one, or the route's own words on what
    it answers with (the schema is the same for all)."""
    description = (declared or {}).get("description")
    if description and description not in ("Validation Error", "Additional Response"):
        return _problem_response(status, description)
    return {"$ref": f"#/components/responses/{RESPONSE_NAMES[status]}"}


def _add_example(operation: dict[str, Any], example: dict[str, Any]) -> None:
    content = operation.get("requestBody", {}).get("content", {})
    for media in content.values():
        media["example"] = example


def _unused_schemas(document: dict[str, Any]) -> None:
    """Drops FastAPI's own validation-error schemas once no response refers to them."""
    schemas = document.get("components", {}).get("schemas", {})
    text = str({k: v for k, v in document.items() if k != "components"})
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and f"#/components/schemas/{name}" not in text:
            del schemas[name]
    others = str({k: v for k, v in schemas.items() if k != "ValidationError"})
    if "ValidationError" in schemas and "#/components/schemas/ValidationError" not in others:
        del schemas["ValidationError"]


def complete(app: FastAPI, document: dict[str, Any]) -> dict[str, Any]:
    """`document` (FastAPI's) with every operation's statuses, security and examples."""
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    components["responses"] = {
        name: _problem_response(status) for status, name in RESPONSE_NAMES.items()
    }
    for method, path, route in api_routes(app):
        operation = document["paths"][path][method.lower()]
        responses: dict[str, Any] = operation.setdefault("responses", {})
        for status in sorted(statuses_of(method, path, route, operation)):
            declared = responses.get(str(status))
            if declared and any(
                media != PROBLEM_CONTENT_TYPE and media != "application/json"
                for media in declared.get("content", {})
            ):
                continue  # the route answers this status with a body of its own
            if declared and "application/json" in declared.get("content", {}) and status != 422:
                continue  # e.g. readiness: 503 is its own JSON body, not a problem
            responses[str(status)] = _answer(status, declared)
        operation["responses"] = dict(sorted(responses.items()))
        operation["security"] = AUTHENTICATED if authenticates(route) else []
        if (method, path) in EXAMPLES:
            _add_example(operation, EXAMPLES[(method, path)])
    _unused_schemas(document)
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at the app's `openapi_url` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            app.openapi_schema = complete(app, document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
