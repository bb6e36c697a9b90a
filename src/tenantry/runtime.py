"""Starting the service: migrate, optionally seed a demo organization, run uvicorn."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import uvicorn

from tenantry.config import Settings
from tenantry.kit import migrations

log = logging.getLogger("tenantry")
DEMO_EMAIL = "demo@example.com"
DEMO_COMPANY = "Demo AI"


def migrate(settings: Settings) -> str:
    url = settings.resolved_database_url()
    migrations.upgrade(url)
    return url


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str | None
    org_slug: str


def seed_demo(settings: Settings) -> DemoLogin:
    """A demo organization with an owner account. A second start keeps the account; its password
    is printed only the first time, when it is made."""
    from tenantry.identity import repository as identity_repository
    from tenantry.identity import service as identity
    from tenantry.kit.clock import SystemClock
    from tenantry.kit.context import Ctx, Origin
    from tenantry.kit.db import Database
    from tenantry.kit.security import Passwords
    from tenantry.tenancy import service as tenancy

    db = Database(settings.resolved_database_url())
    try:
        with db.session(write=True) as session:
            if identity_repository.user_by_email(session, DEMO_EMAIL) is not None:
                return DemoLogin(DEMO_EMAIL, None, "demo-ai")
            ctx = Ctx(
                session=session,
                clock=SystemClock(),
                settings=settings,
                origin=Origin(action="organization.onboarded"),
                write=True,
            )
            passwords = Passwords(
                time_cost=settings.password_time_cost,
                memory_cost_kib=settings.password_memory_cost_kib,
            )
            password = "demo-" + secrets.token_urlsafe(12)
            owner = identity.create_user(
                ctx,
                passwords=passwords,
                email=DEMO_EMAIL,
                password=password,
                full_name="Demo Owner",
            )
            onboarded = tenancy.onboard(
                ctx, company_name=DEMO_COMPANY, owner=owner, plan="professional"
            )
            ctx.done(None)
            return DemoLogin(DEMO_EMAIL, password, onboarded.org.slug)
    finally:
        db.dispose()


def serve(settings: Settings, *, host: str, port: int, workers: int, demo: bool) -> None:
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
        else:
            print(
                f"Demo organization '{login.org_slug}' exists; sign in as {login.email} "
                "(password printed when it was first made)"
            )
    print(f"Tenantry on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run("tenantry.asgi:app", host=host, port=port, workers=workers, log_level="info")
