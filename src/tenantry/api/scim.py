"""HTTP routes of SCIM provisioning: on Tenantry's own API, an org's SCIM tokens and
provisioning rules; and the SCIM 2.0 service itself at `/scim/v2`, which Okta or Entra ID call
with a token.

The SCIM routes are plain Starlette routes, outside FastAPI's dependency machinery and its
problem+json handlers, as the MLflow face's are (`api/mlflow.py`): directories read errors as
SCIM error bodies (`urn:ietf:params:scim:api:messages:2.0:Error`, with a `scimType`) of type
`application/scim+json`. Each call is one unit of work in one worker thread
(`http.turns.in_turn`), written with one audit event whose actor is the token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from scim2_models import (
    Context,
    Error,
    InvalidSyntaxException,
    NotFoundException,
    SCIMException,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.routing import Mount, Route

from tenantry.authz.catalog import Permission
from tenantry.http.auth import OrgScope, org_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.turns import commit, in_turn
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Problem
from tenantry.kit.pagination import PageDep, PageOut
from tenantry.scim import directory as scim_directory
from tenantry.scim import tokens
from tenantry.scim.resources import PROVIDER
from tenantry.scim.schemas import ScimTokenCreatedOut, ScimTokenIn, ScimTokenOut
from tenantry.sso.mapping import MappingRules

log = logging.getLogger("tenantry.scim")

PREFIX = "/scim/v2"
MEDIA_TYPE = "application/scim+json"

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)

Read = Annotated[OrgScope, Depends(org_scope(Permission.SSO_READ))]
Manage = Annotated[OrgScope, Depends(org_scope(Permission.SSO_MANAGE))]


def base_url(ctx: Ctx) -> str:
    return ctx.origin.base_url.rstrip("/") + PREFIX


# ---- tokens and rules, on Tenantry's API ----


@router.post(
    "/orgs/{org}/scim/tokens",
    name="scim_token.created",
    status_code=201,
    response_model=ScimTokenCreatedOut,
    tags=["scim"],
)
def create_token(body: ScimTokenIn, scope: Manage) -> Response:
    ctx = scope.ctx
    issued = tokens.create_token(ctx, scope.principal, scope.org, name=body.name)
    out = ScimTokenCreatedOut.model_validate(
        {
            **ScimTokenOut.model_validate(issued.token).model_dump(),
            "secret": issued.secret,
            "base_url": base_url(ctx),
        }
    )
    return ctx.done(out, status=201)


@router.get("/orgs/{org}/scim/tokens", response_model=PageOut[ScimTokenOut], tags=["scim"])
def list_tokens(scope: Read, page: PageDep) -> PageOut[ScimTokenOut]:
    found = tokens.list_tokens(scope.ctx.session, scope.principal, scope.org, page)
    return PageOut(
        items=[ScimTokenOut.model_validate(t) for t in found.items],
        next_cursor=found.next_cursor,
    )


@router.delete(
    "/orgs/{org}/scim/tokens/{token_id}",
    name="scim_token.revoked",
    response_model=ScimTokenOut,
    tags=["scim"],
)
def revoke_token(token_id: str, scope: Manage) -> Response:
    token = tokens.revoke_token(scope.ctx, scope.principal, scope.org, token_id)
    return scope.ctx.done(ScimTokenOut.model_validate(token))


@router.get("/orgs/{org}/scim/mapping", response_model=MappingRules, tags=["scim"])
def read_mapping(scope: Read) -> MappingRules:
    return tokens.read_mapping(scope.ctx.session, scope.principal, scope.org)


@router.put(
    "/orgs/{org}/scim/mapping",
    name="scim.mapping_changed",
    response_model=MappingRules,
    tags=["scim"],
)
def set_mapping(body: MappingRules, scope: Manage) -> Response:
    rules = tokens.set_mapping(scope.ctx, scope.principal, scope.org, body)
    return scope.ctx.done(rules)


# ---- the SCIM service ----


def scim_response(
    body: Mapping[str, Any] | None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    content = b"" if body is None else orjson.dumps(body)
    return Response(content, status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {}))


def scim_error(status: int, detail: str, scim_type: str | None = None) -> Response:
    error = Error(status=status, scim_type=scim_type, detail=detail)
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if status == 401 else None
    return scim_response(error.model_dump(scim_ctx=Context.DEFAULT), status=status, headers=headers)


_PROBLEM_SCIM_TYPES = {400: "invalidValue", 422: "invalidValue", 409: "uniqueness"}


async def _guarded(call: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await call()
    except SCIMException as exc:
        return scim_error(exc.status, exc.detail, exc.scim_type or None)
    except Problem as problem:
        return scim_error(problem.status, problem.detail, _PROBLEM_SCIM_TYPES.get(problem.status))
    except IntegrityError:  # a concurrent request wrote the same name first
        return scim_error(409, "The request conflicts with existing data", "uniqueness")
    except OperationalError:
        log.warning("database unavailable for SCIM", exc_info=True)
        return scim_error(503, "The database is busy; retry")


def _credential(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise SCIMException.from_error(
            Error(status=401, detail="Send `Authorization: Bearer <SCIM token>`")
        )
    return value.strip()


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidSyntaxException(detail="The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidSyntaxException(detail="The request body is a JSON object")
    return body


Handler = Callable[[Ctx, tokens.Directory, Request, dict[str, Any]], Response]
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def _endpoint(path: str, handlers: Mapping[str, Handler]) -> Route:
    """One path and the methods it answers; any other method is 405, as a SCIM error."""
    name = "scim." + (path.strip("/").split("/")[0].lower() or "root")
    allowed = ", ".join(sorted(handlers))

    async def call(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            response = scim_error(405, f"{path} answers {allowed}")
            response.headers["Allow"] = allowed
            return response
        chosen: Handler = handler

        async def run() -> Response:
            secret = _credential(request)
            raw = await request.body() if request.method in _WITH_BODY else None

            def work(ctx: Ctx) -> Response:
                found = tokens.authenticate(ctx, secret)  # before anything of the body is read
                body = _body(raw) if raw is not None else {}
                response = chosen(ctx, found, request, body)
                commit(ctx)  # the token's last use, even on a read
                return response

            action = f"{name}.{request.method.lower()}"
            return await in_turn(request, work, write=True, lane="scim", action=action)

        return await _guarded(run)

    return Route(path, call, methods=["GET", "POST", "PUT", "PATCH", "DELETE"], name=name)


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params)


def _one(written: scim_directory.Written, *, status: int = 200) -> Response:
    headers = {"ETag": written.version, "Location": written.location}
    return scim_response(written.body, status=status, headers=headers)


def _if_match(request: Request) -> str | None:
    return request.headers.get("if-match")


def list_users(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    return scim_response(scim_directory.list_users(ctx, d, _params(r), base_url(ctx)))


def get_user(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    return _one(scim_directory.get_user(ctx, d, r.path_params["id"], _params(r), base_url(ctx)))


def create_user(ctx: Ctx, d: tokens.Directory, r: Request, body: dict[str, Any]) -> Response:
    return _one(scim_directory.create_user(ctx, d, body, base_url(ctx)), status=201)


def replace_user(ctx: Ctx, d: tokens.Directory, r: Request, body: dict[str, Any]) -> Response:
    written = scim_directory.replace_user(
        ctx, d, r.path_params["id"], body, base_url(ctx), if_match=_if_match(r)
    )
    return _one(written)


def patch_user(ctx: Ctx, d: tokens.Directory, r: Request, body: dict[str, Any]) -> Response:
    written = scim_directory.patch_user(
        ctx, d, r.path_params["id"], body, base_url(ctx), if_match=_if_match(r)
    )
    return _one(written)


def delete_user(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    scim_directory.delete_user(ctx, d, r.path_params["id"], if_match=_if_match(r))
    return scim_response(None, status=204)


def _search_params(body: dict[str, Any]) -> dict[str, str]:
    """A SearchRequest body (RFC 7644 §3.4.3) as the query parameters of a GET."""
    out: dict[str, str] = {}
    for name, value in body.items():
        if name == "schemas" or value is None:
            continue
        out[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def search_users(ctx: Ctx, d: tokens.Directory, r: Request, body: dict[str, Any]) -> Response:
    found = scim_directory.list_users(ctx, d, _search_params(body), base_url(ctx))
    return scim_response(found)


def search_groups(ctx: Ctx, d: tokens.Directory, r: Request, body: dict[str, Any]) -> Response:
    found = scim_directory.list_groups(ctx, d, _search_params(body), base_url(ctx))
    return scim_response(found)


def search_all(ctx: Ctx, d: tokens.Directory, r: Request, body: dict[str, Any]) -> Response:
    found = scim_directory.search_all(ctx, d, _search_params(body), base_url(ctx))
    return scim_response(found)


def list_groups(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    return scim_response(scim_directory.list_groups(ctx, d, _params(r), base_url(ctx)))


def get_group(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    return _one(scim_directory.get_group(ctx, d, r.path_params["id"], _params(r), base_url(ctx)))


def create_group(ctx: Ctx, d: tokens.Directory, r: Request, body: dict[str, Any]) -> Response:
    return _one(scim_directory.create_group(ctx, d, body, base_url(ctx)), status=201)


def replace_group(ctx: Ctx, d: tokens.Directory, r: Request, body: dict[str, Any]) -> Response:
    written = scim_directory.replace_group(
        ctx, d, r.path_params["id"], body, base_url(ctx), if_match=_if_match(r)
    )
    return _one(written)


def patch_group(ctx: Ctx, d: tokens.Directory, r: Request, body: dict[str, Any]) -> Response:
    written = scim_directory.patch_group(
        ctx, d, r.path_params["id"], body, base_url(ctx), if_match=_if_match(r)
    )
    return _one(written)


def delete_group(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    scim_directory.delete_group(ctx, d, r.path_params["id"], if_match=_if_match(r))
    return scim_response(None, status=204)


# ---- discovery (RFC 7644 §4) ----


def _described(document: Any, kind: str, id_: str, base: str) -> dict[str, Any]:
    out: dict[str, Any] = document.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    out["meta"] = {"resourceType": kind, "location": f"{base}/{kind}s/{id_}"}
    return out


def _schemas(base: str) -> list[dict[str, Any]]:
    return [_described(s, "Schema", str(s.id), base) for s in PROVIDER.schemas]


def _resource_types(base: str) -> list[dict[str, Any]]:
    return [_described(t, "ResourceType", str(t.id), base) for t in PROVIDER.resource_types]


def _listed(found: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [scim_directory.LIST_RESPONSE],
        "totalResults": len(found),
        "startIndex": 1,
        "itemsPerPage": len(found),
        "Resources": found,
    }


def _pick(found: list[dict[str, Any]], id_: str, kind: str) -> Response:
    for document in found:
        if document.get("id") == id_:
            return scim_response(document)
    raise NotFoundException(detail=f"No {kind} {id_}")


def service_provider_config(
    ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]
) -> Response:
    config = PROVIDER.config
    assert config is not None
    body: dict[str, Any] = config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    body["meta"] = {
        "resourceType": "ServiceProviderConfig",
        "location": f"{base_url(ctx)}/ServiceProviderConfig",
    }
    return scim_response(body)


def list_schemas(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    return scim_response(_listed(_schemas(base_url(ctx))))


def get_schema(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    return _pick(_schemas(base_url(ctx)), r.path_params["id"], "schema")


def list_resource_types(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    return scim_response(_listed(_resource_types(base_url(ctx))))


def get_resource_type(ctx: Ctx, d: tokens.Directory, r: Request, _: dict[str, Any]) -> Response:
    return _pick(_resource_types(base_url(ctx)), r.path_params["id"], "resource type")


async def not_found(request: Request) -> Response:
    return scim_error(404, f"{request.method} {request.url.path} is not a SCIM endpoint")


def mount() -> Mount:
    """Every route of the SCIM service, under `/scim/v2`."""
    routes = [
        _endpoint("/ServiceProviderConfig", {"GET": service_provider_config}),
        _endpoint("/Schemas", {"GET": list_schemas}),
        _endpoint("/Schemas/{id:path}", {"GET": get_schema}),
        _endpoint("/ResourceTypes", {"GET": list_resource_types}),
        _endpoint("/ResourceTypes/{id}", {"GET": get_resource_type}),
        _endpoint("/.search", {"POST": search_all}),
        _endpoint("/Users", {"GET": list_users, "POST": create_user}),
        _endpoint("/Users/.search", {"POST": search_users}),
        _endpoint(
            "/Users/{id}",
            {"GET": get_user, "PUT": replace_user, "PATCH": patch_user, "DELETE": delete_user},
        ),
        _endpoint("/Groups", {"GET": list_groups, "POST": create_group}),
        _endpoint("/Groups/.search", {"POST": search_groups}),
        _endpoint(
            "/Groups/{id}",
            {"GET": get_group, "PUT": replace_group, "PATCH": patch_group, "DELETE": delete_group},
        ),
        Route("/{rest:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    return Mount(PREFIX, routes=routes)
