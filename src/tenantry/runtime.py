"""Starting the service: migrate, optionally seed a demo organization, run uvicorn."""

from __future__ import annotations

import logging
import secrets
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn

from tenantry.config import Settings
from tenantry.kit import files, migrations

log = logging.getLogger("tenantry")
DEMO_EMAIL = "demo@example.com"
DEMO_COMPANY = "Demo AI"


def secure_files(settings: Settings) -> None:
    """The data directory 0700, the secret and the embedded database's files 0600 (`kit.files`):
    made so, and an older install's tightened, at every start."""
    files.secure_install(settings.data_dir, settings.resolved_database_url())


def migrate(settings: Settings) -> str:
    secure_files(settings)
    url = settings.resolved_database_url()
    migrations.upgrade(url)
    return url


DEMO_OPERATOR_EMAIL = "operator@example.com"


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str | None
    org_slug: str
    operator_email: str = DEMO_OPERATOR_EMAIL
    operator_password: str | None = None


def _passwords(settings: Settings) -> Any:
    from tenantry.kit.security import Passwords

    return Passwords(
        time_cost=settings.password_time_cost, memory_cost_kib=settings.password_memory_cost_kib
    )


def _system_ctx(session: Any, settings: Settings, action: str) -> Any:
    from tenantry.kit.clock import SystemClock
    from tenantry.kit.context import Ctx, Origin

    return Ctx(
        session=session,
        clock=SystemClock(),
        settings=settings,
        origin=Origin(action=action),
        write=True,
    )


def seed_demo(settings: Settings) -> DemoLogin:
    """A demo organization (on the Free plan: the tour subscribes it to a paid one) with an
    owner account, and an operator account. A second start keeps the accounts; their passwords
    are printed only the first time, when they are made."""
    from tenantry.identity import repository as identity_repository
    from tenantry.identity import service as identity
    from tenantry.kit.db import Database
    from tenantry.operator import service as operators
    from tenantry.plans.catalog import DEFAULT_PLAN
    from tenantry.tenancy.onboarding import onboard

    db = Database(settings.resolved_database_url(), pool_size=settings.database_pool_size)
    try:
        with db.session(write=True) as session:
            if identity_repository.user_by_email(session, DEMO_EMAIL) is not None:
                return DemoLogin(DEMO_EMAIL, None, "demo-ai")
            ctx = _system_ctx(session, settings, "organization.onboarded")
            password = "demo-" + secrets.token_urlsafe(12)
            owner = identity.create_user(
                ctx,
                passwords=_passwords(settings),
                email=DEMO_EMAIL,
                password=password,
                full_name="Demo Owner",
            )
            onboarded = onboard(ctx, company_name=DEMO_COMPANY, owner=owner, plan=DEFAULT_PLAN)
            operator_password = "operator-" + secrets.token_urlsafe(12)
            operator = identity.create_user(
                ctx,
                passwords=_passwords(settings),
                email=DEMO_OPERATOR_EMAIL,
                password=operator_password,
                full_name="Demo Operator",
            )
            operators.add_operator(session, operator, now=ctx.clock.now(), by="demo")
            ctx.done(None)
            return DemoLogin(
                DEMO_EMAIL,
                password,
                onboarded.org.slug,
                operator_password=operator_password,
            )
    finally:
        db.dispose()


# ---- operators: the deployment flags them on its database (`tenantry operator add`) ----


@dataclass(frozen=True)
class OperatorChange:
    email: str
    user_id: str
    changed: bool  # False: they already were (or were not) an operator
    created_user: bool = False


class OperatorSetupError(Exception):
    """What `tenantry operator add|remove` cannot do, in a sentence."""


def _operator_db(settings: Settings) -> Any:
    from tenantry.kit.db import Database

    if settings.uses_embedded_database():
        migrate(settings)  # as `serve` does for the embedded default
    return Database(settings.resolved_database_url(), pool_size=settings.database_pool_size)


def add_operator(
    settings: Settings, email: str, *, create_password: str | None = None
) -> OperatorChange:
    """Make the account of `email` an operator; with `create_password`, create the account
    first if there is none."""
    from tenantry.identity import service as identity
    from tenantry.kit.errors import Problem
    from tenantry.operator import service as operators

    db = _operator_db(settings)
    try:
        with db.session(write=True) as session:
            user = operators.user_by_email(session, email)
            created = False
            if user is None:
                if create_password is None:
                    raise OperatorSetupError(
                        f"no account with the email {email!r}: sign up first, or pass --create"
                    )
                ctx = _system_ctx(session, settings, "operator.added")
                try:
                    user = identity.create_user(
                        ctx, passwords=_passwords(settings), email=email, password=create_password
                    )
                except Problem as exc:
                    raise OperatorSetupError(exc.detail) from None
                created = True
            changed = operators.add_operator(session, user, now=_now())
            session.commit()
            return OperatorChange(user.email, user.id, changed, created)
    finally:
        db.dispose()


def remove_operator(settings: Settings, email: str) -> OperatorChange:
    from tenantry.operator import service as operators

    db = _operator_db(settings)
    try:
        with db.session(write=True) as session:
            user = operators.user_by_email(session, email)
            if user is None:
                raise OperatorSetupError(f"no account with the email {email!r}")
            changed = operators.remove_operator(session, user, now=_now())
            session.commit()
            return OperatorChange(user.email, user.id, changed)
    finally:
        db.dispose()


def list_operators(settings: Settings) -> list[dict[str, str]]:
    from tenantry.operator import service as operators

    db = _operator_db(settings)
    try:
        with db.session(write=False) as session:
            return [
                {
                    "email": user.email,
                    "user_id": user.id,
                    "added_at": found.created_at.isoformat(),
                    "added_by": found.added_by,
                }
                for found, user in operators.operators(session)
            ]
    finally:
        db.dispose()


def _now() -> Any:
    from tenantry.kit.clock import SystemClock

    return SystemClock().now()


def several_processes_warning(settings: Settings, workers: int) -> str | None:
    """What to say when several processes would each count rate limits on their own."""
    if workers <= 1 or settings.redis_url:
        return None
    rule = "!" * 78
    return (
        f"{rule}\n"
        f"WARNING: {workers} worker processes and no TENANTRY_REDIS_URL.\n"
        "Each process counts rate limits and the daily API-calls quota on its own, so together\n"
        f"they let through up to {workers} times what a plan allows. Set TENANTRY_REDIS_URL for\n"
        "exact limits across processes (docs/rate-limits.md), or serve with --workers 1.\n"
        f"{rule}"
    )


def serve(settings: Settings, *, host: str, port: int, workers: int, demo: bool) -> None:
    warning = several_processes_warning(settings, workers)
    if warning is not None:
        print(warning, file=sys.stderr)
    secure_files(settings)
    if settings.uses_embedded_database():
        # The embedded default migrates itself; a shared PostgreSQL is migrated on purpose.
        migrate(settings)
    settings.server_secret()  # create it once, before several workers race to
    if demo:
        login = seed_demo(settings)
        if login.password:
            print(
                f"Demo organization '{login.org_slug}': sign in as {login.email} / {login.password}"
            )
            print(
                f"Operator (every tenant, docs/operators.md): sign in as {login.operator_email} "
                f"/ {login.operator_password}"
            )
        else:
            print(
                f"Demo organization '{login.org_slug}' exists; sign in as {login.email} "
                "(password printed when it was first made)"
            )
    print(f"Tenantry on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run("tenantry.asgi:app", host=host, port=port, workers=workers, log_level="info")
