"""create_app(settings) -> FastAPI: wires routers, middleware, problem+json error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenantry import __version__
from tenantry.api import mlflow, scim
from tenantry.api.access import router as access_router
from tenantry.api.audit import router as audit_router
from tenantry.api.billing import router as billing_router
from tenantry.api.billing import webhook_router as billing_webhooks
from tenantry.api.compliance import router as compliance_router
from tenantry.api.governance import router as governance_router
from tenantry.api.identity import router as identity_router
from tenantry.api.metering import router as metering_router
from tenantry.api.ml import UPLOAD_PATHS as ML_UPLOAD_PATHS
from tenantry.api.ml import router as ml_router
from tenantry.api.operator import router as operator_router
from tenantry.api.privacy import router as privacy_router
from tenantry.api.spend import router as spend_router
from tenantry.api.sso import router as sso_router
from tenantry.api.tenancy import router as tenancy_router
from tenantry.api.throttling import router as throttling_router
from tenantry.api.webhooks import router as webhooks_router
from tenantry.audit import service as audit
from tenantry.billing.providers import provider_from_settings
from tenantry.config import Settings
from tenantry.http import docs, openapi
from tenantry.http.state import AppState, app_state
from tenantry.kit import files
from tenantry.kit.clock import Clock, SystemClock
from tenantry.kit.context import Origin
from tenantry.kit.db import Database
from tenantry.kit.dberrors import concurrent_conflict, integrity_problem, is_concurrent_conflict
from tenantry.kit.errors import (
    PROBLEM_CONTENT_TYPE,
    Forbidden,
    InternalError,
    InvalidValue,
    MalformedJson,
    MethodNotAllowed,
    NotFound,
    Problem,
    ServiceUnavailable,
    Unprocessable,
    problem_for_status,
)
from tenantry.kit.idempotency import Replay
from tenantry.kit.limits import BodyLimit
from tenantry.kit.observability import Metrics, RequestTracking
from tenantry.kit.security import AccessTokens, Passwords
from tenantry.ml.stores import store_from_settings
from tenantry.throttling.limiter import RateLimitHeaders, RequestLimiter
from tenantry.web import routes as web

log = logging.getLogger("tenantry")

_READINESS_BODY = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "database": {"type": "string"}},
}
READINESS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The database answers"},
    503: {
        "description": "The database does not answer",
        "content": {"application/json": {"schema": _READINESS_BODY}},
    },
}


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    body = problem.body(instance=request.url.path)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body.setdefault("request_id", request_id)
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_CONTENT_TYPE
    )


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
    state = app_state(request)
    origin = Origin(
        ip=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
        request_id=getattr(request.state, "request_id", None),
        action=action,
    )
    with state.db.session(write=True) as session:
        audit.record_denial(
            session,
            now=state.clock.now(),
            origin=origin,
            principal=principal,
            org_id=org_id,
            team_id=exc.team_id or getattr(request.state, "audit_team_id", None),
            summary={"missing_permission": exc.extra.get("missing_permission"), "code": exc.code},
        )
        session.commit()


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    def on_problem(request: Request, exc: Problem) -> Response:
        if isinstance(exc, Forbidden):
            _record_denial(request, exc)
        if web.is_page(request):  # the dashboard answers with the same status, as a page
            return web.problem_page(request, exc)
        return problem_response(request, exc)

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
        invalid = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if invalid is not None:
            why = (invalid.get("ctx") or {}).get("error")
            problem: Problem = MalformedJson(
                f"The request body is not valid JSON: {why}"
                if why
                else "The request body is not valid JSON",
                extra={"errors": errors},
            )
        else:
            first = errors[0] if errors else {"loc": [], "msg": "invalid"}
            where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
            problem = Unprocessable(f"{where}: {first['msg']}", extra={"errors": errors})
        return problem_response(request, problem)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        problem: Problem
        if exc.status_code == 404:
            problem = NotFound("No such route", headers=headers)
        elif exc.status_code == 405:
            problem = MethodNotAllowed(
                f"{request.method} is not allowed on this route", headers=headers
            )
        else:
            problem = problem_for_status(exc.status_code, str(exc.detail), headers)
        return problem_response(request, problem)

    @app.exception_handler(IntegrityError)
    async def on_integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # A constraint the database enforced, read by kind (kit.dberrors); rolled back.
        log.info("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(request, integrity_problem(exc))

    @app.exception_handler(DataError)
    async def on_unstorable(request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot hold or compare (PostgreSQL refuses NUL characters, even
        # in a path or query parameter); the transaction has rolled back, nothing was written.
        log.info("unstorable value on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(
            request,
            InvalidValue(
                "The request holds a value that cannot be stored or looked up "
                "(for example a NUL character)"
            ),
        )

    @app.exception_handler(OperationalError)
    async def on_database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        if is_concurrent_conflict(exc):  # transactions that met; a retry resolves it
            log.info("concurrent conflict on %s %s: %s", request.method, request.url.path, exc.orig)
            return problem_response(request, concurrent_conflict())
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(
            request,
            ServiceUnavailable(
                "The database is busy or unreachable; nothing was written. Retry.",
                headers={"Retry-After": "1"},
            ),
        )

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Sent from outside the request-id middleware, so the header is added here.
        request_id = getattr(request.state, "request_id", None)
        headers = {"X-Request-ID": request_id} if request_id else {}
        problem = InternalError("An unexpected error occurred; it has been logged", headers=headers)
        return problem_response(request, problem)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # The API's own calls are recorded in batches: let a write under way finish, then write
    # what is left before stopping.
    ledger = cast(AppState, app.state).throttle.ledger
    await anyio.to_thread.run_sync(ledger.wait_written, 30.0)
    await anyio.to_thread.run_sync(ledger.flush)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
) -> FastAPI:
    settings = settings or Settings()
    if database is None:  # this process opens the database: its files are made private first
        files.secure_install(settings.data_dir, settings.resolved_database_url())
    secret = settings.server_secret()
    app = FastAPI(
        title="Tenantry",
        version=__version__,
        description="Multi-tenant team and enterprise control plane for AI/ML platforms.",
        lifespan=_lifespan,
        # Served from the package's own assets (`http.docs`), not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    state = app.state = AppState()
    state.settings = settings
    state.clock = clock or SystemClock()
    state.db = database or Database(
        settings.resolved_database_url(), pool_size=settings.database_pool_size
    )
    state.tokens = AccessTokens(
        secret,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        ttl=timedelta(seconds=settings.access_token_ttl_seconds),
    )
    state.passwords = Passwords(
        time_cost=settings.password_time_cost, memory_cost_kib=settings.password_memory_cost_kib
    )
    state.notary = audit.Notary(secret)
    state.throttle = RequestLimiter.from_settings(settings, state.db)
    state.payments = provider_from_settings(settings)
    metrics = state.metrics = Metrics()
    state.artifacts = store_from_settings(settings)

    # Routers are matched in turn, each route by its pattern, and each router passed costs about
    # 10 µs: metering's high-volume data path (usage events, admission) goes first. No route is
    # reached by another's path either way (tests/matrix/test_route_table.py).
    for router in (
        metering_router,
        spend_router,
        identity_router,
        tenancy_router,
        access_router,
        audit_router,
        privacy_router,
        throttling_router,
        billing_router,
        billing_webhooks,
        operator_router,
        sso_router,
        scim.router,
        ml_router,
        webhooks_router,
        governance_router,
        compliance_router,
    ):
        app.include_router(router)
    # The MLflow face at each team's tracking URI, with MLflow's own error shape (api/mlflow.py).
    app.router.routes.append(mlflow.mount())
    # The SCIM 2.0 service for directories, with SCIM's error shape (api/scim.py).
    app.router.routes.append(scim.mount())
    web.install(app, settings)  # the dashboard's pages, at / (docs/dashboard.md)
    _install_error_handlers(app)
    app.add_middleware(RateLimitHeaders, limiter=state.throttle, clock=state.clock)
    uploads = f"{mlflow.UPLOAD_PATHS}|{ML_UPLOAD_PATHS}"  # bounded by the routes themselves
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes, streams=uploads)
    app.add_middleware(RequestTracking, metrics=metrics)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["operations"], responses=READINESS)
    def readyz() -> JSONResponse:
        try:
            with state.db.session(write=False) as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": "reachable"})

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    docs.install(app)
    openapi.install(app)
    return app
