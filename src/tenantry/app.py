"""create_app(settings) -> FastAPI: wires routers, middleware, problem+json error handlers."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenantry import __version__
from tenantry.audit import service as audit
from tenantry.audit.endpoints import router as audit_router
from tenantry.config import Settings
from tenantry.identity.endpoints import router as identity_router
from tenantry.kit.clock import Clock, SystemClock
from tenantry.kit.db import Database
from tenantry.kit.errors import PROBLEM_CONTENT_TYPE, Forbidden, Problem
from tenantry.kit.http import Origin
from tenantry.kit.idempotency import Replay
from tenantry.kit.observability import Metrics, RequestTracking
from tenantry.kit.security import AccessTokens, Passwords
from tenantry.tenancy.endpoints import router as tenancy_router

log = logging.getLogger("tenantry")


def problem_response(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    body.setdefault("instance", request.url.path)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body.setdefault("request_id", request_id)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _record_denial(request: Request, exc: Forbidden) -> None:
    """Refused attempts are audited as `denied`, in a transaction of their own (the request's
    own transaction has been rolled back by then)."""
    principal = getattr(request.state, "principal", None)
    route = request.scope.get("route")
    action = getattr(route, "name", None)
    org_id = exc.org_id or getattr(request.state, "audit_org_id", None)
    # Reads that are refused are answered, not recorded: the trail is of attempted changes.
    if principal is None or action is None or org_id is None or request.method == "GET":
        return
    state = request.app.state
    origin = Origin(
        ip=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
        request_id=getattr(request.state, "request_id", None),
        action=action,
    )
    event = audit.build_event(
        origin=origin,
        actor_type=principal.actor_type,
        actor_id=principal.actor_id,
        action=action,
        org_id=org_id,
        team_id=exc.team_id or getattr(request.state, "audit_team_id", None),
        target_type=None,
        target_id=None,
        result="denied",
        summary={"missing_permission": exc.extra.get("missing_permission"), "code": exc.code},
        occurred_at=state.clock.now(),
    )
    with state.db.session(write=True) as session:
        session.add(event)
        session.commit()


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    def on_problem(request: Request, exc: Problem) -> JSONResponse:
        if isinstance(exc, Forbidden):
            _record_denial(request, exc)
        return problem_response(request, exc.status, exc.body(), exc.headers)

    @app.exception_handler(Replay)
    async def on_replay(request: Request, exc: Replay) -> Response:
        media = "application/json" if exc.body else None
        return Response(
            exc.body,
            status_code=exc.status_code,
            media_type=media,
            headers={"Idempotent-Replayed": "true"},
        )

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            body = {
                "type": "https://tenantry.dev/problems/malformed_json",
                "title": "Malformed JSON",
                "status": 400,
                "detail": "The request body is not valid JSON",
                "code": "malformed_json",
                "errors": errors,
            }
            return problem_response(request, 400, body)
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
        body = {
            "type": "https://tenantry.dev/problems/validation_error",
            "title": "Invalid request",
            "status": 422,
            "detail": f"{where}: {first['msg']}",
            "code": "validation_error",
            "errors": errors,
        }
        return problem_response(request, 422, body)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {
            "type": f"https://tenantry.dev/problems/{code}",
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "code": code,
        }
        return problem_response(request, exc.status_code, body, dict(exc.headers or {}))

    @app.exception_handler(IntegrityError)
    async def on_integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests raced for the same unique value; the loser's transaction wrote nothing.
        log.info("integrity conflict on %s %s: %s", request.method, request.url.path, exc.orig)
        body = {
            "type": "https://tenantry.dev/problems/conflict",
            "title": "Conflict",
            "status": 409,
            "detail": "A concurrent request changed the same thing; nothing was written. Retry.",
            "code": "concurrent_conflict",
        }
        return problem_response(request, 409, body)

    @app.exception_handler(DataError)
    async def on_unstorable(request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot hold or compare (PostgreSQL refuses NUL characters, even
        # in a path or query parameter); the transaction has rolled back, nothing was written.
        log.info("unstorable value on %s %s: %s", request.method, request.url.path, exc.orig)
        body = {
            "type": "https://tenantry.dev/problems/invalid_value",
            "title": "Bad request",
            "status": 400,
            "detail": "The request holds a value that cannot be stored or looked up "
            "(for example a NUL character)",
            "code": "invalid_value",
        }
        return problem_response(request, 400, body)

    @app.exception_handler(OperationalError)
    async def on_database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        body = {
            "type": "https://tenantry.dev/problems/database_unavailable",
            "title": "Service unavailable",
            "status": 503,
            "detail": "The database is busy or unreachable; nothing was written. Retry.",
            "code": "database_unavailable",
        }
        return problem_response(request, 503, body, {"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = {
            "type": "https://tenantry.dev/problems/internal_error",
            "title": "Internal server error",
            "status": 500,
            "detail": "An unexpected error occurred; it has been logged",
            "code": "internal_error",
        }
        # Sent from outside the request-id middleware, so the header is added here.
        request_id = getattr(request.state, "request_id", None)
        headers = {"X-Request-ID": request_id} if request_id else None
        return problem_response(request, 500, body, headers)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
) -> FastAPI:
    settings = settings or Settings()
    secret = settings.server_secret()
    app = FastAPI(
        title="Tenantry",
        version=__version__,
        description="Multi-tenant team and enterprise control plane for AI/ML platforms.",
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    app.state.db = database or Database(settings.resolved_database_url())
    app.state.tokens = AccessTokens(
        secret,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        ttl=timedelta(seconds=settings.access_token_ttl_seconds),
    )
    app.state.passwords = Passwords(
        time_cost=settings.password_time_cost, memory_cost_kib=settings.password_memory_cost_kib
    )
    metrics = Metrics()
    app.state.metrics = metrics

    for router in (identity_router, tenancy_router, audit_router):
        app.include_router(router)
    _install_error_handlers(app)
    app.add_middleware(RequestTracking, metrics=metrics)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        try:
            with app.state.db.session(write=False) as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": "reachable"})

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
