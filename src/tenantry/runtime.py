"""Starting the service: migrate, optionally seed a demo organization, run uvicorn."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import uvicorn

from tenantry.config import Settings
from tenantry.kit import migrations

log = logging.getLogger("tenantry")
DEMO_EMAIL = "demo@tenantry.local"
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
    """A demo organization with an owner account; on a second start the same account is kept
    (its password is printed only the first time, when it is made)."""
    from fastapi.testclient import TestClient

    from tenantry.app import create_app

    app = create_app(settings)
    password = "demo-" + secrets.token_urlsafe(12)
    with TestClient(app) as client:
        resp = client.post(
            "/api/v1/onboard",
            json={
                "company_name": DEMO_COMPANY,
                "admin_email": DEMO_EMAIL,
                "admin_password": password,
                "admin_name": "Demo Owner",
                "plan": "professional",
            },
        )
    app.state.db.dispose()
    if resp.status_code == 201:
        return DemoLogin(DEMO_EMAIL, password, resp.json()["organization"]["slug"])
    if resp.status_code == 409:
        return DemoLogin(DEMO_EMAIL, None, "demo-ai")
    raise RuntimeError(f"could not create the demo organization: {resp.text}")


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
