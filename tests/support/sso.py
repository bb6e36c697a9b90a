"""Driving SSO through the API as a browser and an admin would: connections made and tested,
the trip to a provider followed, the callback's one-time code exchanged for tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi.testclient import TestClient
from httpx import Response

from conftest import Tenant
from support.oidc_provider import OidcProvider
from support.saml_idp import SamlIdp, post_binding

BASE = "http://testserver"


def connections_url(tenant: Tenant, what: str = "") -> str:
    return f"/api/v1/orgs/{tenant.org_id}/sso/connections{what}"


def create_oidc(
    client: TestClient, tenant: Tenant, provider: OidcProvider, **extra: Any
) -> dict[str, Any]:
    body = {
        "name": "Test IdP",
        "protocol": "oidc",
        "settings": {"issuer": provider.issuer, "client_id": provider.client_id},
        "client_secret": provider.client_secret,
        **extra,
    }
    resp = client.post(connections_url(tenant), headers=tenant.headers, json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def set_mapping(
    client: TestClient, tenant: Tenant, connection_id: str, rules: dict[str, Any]
) -> dict[str, Any]:
    resp = client.put(
        connections_url(tenant, f"/{connection_id}/mapping"), headers=tenant.headers, json=rules
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def through_provider(client: TestClient, redirect_url: str) -> Response:
    """The browser's trip: to the provider (which signs the person in at once) and back to the
    app's callback, whose answer is returned unfollowed."""
    at_provider = httpx.get(redirect_url, follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    return back_at(client, at_provider.headers["location"])


def back_at(client: TestClient, location: str) -> Response:
    """The app at `location` (an address of the app, whatever origin it was given as)."""
    return client.get(_local(location), follow_redirects=False)


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def query_of(resp: Response) -> dict[str, str]:
    assert resp.status_code == 303, resp.text
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["location"]).query).items()}


def run_test(client: TestClient, tenant: Tenant, connection_id: str) -> dict[str, Any]:
    """An admin's test sign-in of an OIDC connection, through the provider; its result."""
    started = client.post(
        connections_url(tenant, f"/{connection_id}/test"), headers=tenant.headers, json={}
    )
    assert started.status_code == 200, started.text
    resp = through_provider(client, started.json()["redirect_url"])
    assert resp.status_code in (200, 401, 403), resp.text
    shown = client.get(connections_url(tenant, f"/{connection_id}/test"), headers=tenant.headers)
    assert shown.status_code == 200, shown.text
    return dict(shown.json())


def enable(client: TestClient, tenant: Tenant, connection_id: str) -> dict[str, Any]:
    resp = client.post(connections_url(tenant, f"/{connection_id}/enable"), headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def start_sign_in(client: TestClient, **body: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/auth/sso/start", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def exchange(client: TestClient, callback: Response, verifier: str) -> Response:
    code = query_of(callback)["sso_code"]
    return client.post("/api/v1/auth/sso/exchange", json={"code": code, "verifier": verifier})


def oidc_sign_in(client: TestClient, connection_id: str) -> Response:
    """A whole OIDC sign-in through the provider; the exchange's answer (tokens)."""
    started = start_sign_in(client, connection_id=connection_id)
    callback = through_provider(client, started["redirect_url"])
    return exchange(client, callback, started["verifier"])


# ---- SAML ----


def create_saml(
    client: TestClient, tenant: Tenant, idp: SamlIdp, **settings: Any
) -> dict[str, Any]:
    """A SAML connection to `idp`, whose IdP is then told the app's SP metadata."""
    body = {
        "name": "SAML IdP",
        "protocol": "saml",
        "idp_metadata_xml": idp.metadata(),
        "settings": settings,
    }
    resp = client.post(connections_url(tenant), headers=tenant.headers, json=body)
    assert resp.status_code == 201, resp.text
    conn = dict(resp.json())
    metadata = client.get(f"/api/v1/auth/sso/saml/{conn['id']}/metadata")
    assert metadata.status_code == 200, metadata.text
    idp.trust(metadata.text)
    return conn


def post_acs(client: TestClient, acs_url: str, saml_response: str) -> Response:
    body, headers = post_binding(saml_response)
    return client.post(_local(acs_url), content=body, headers=headers, follow_redirects=False)


def saml_answer(
    client: TestClient,
    idp: SamlIdp,
    redirect_url: str,
    *,
    now: datetime,
    subject: str,
    attributes: dict[str, list[str]],
    **respond: Any,
) -> Response:
    """The IdP reads the app's AuthnRequest, signs the person in and posts its answer."""
    request = idp.read_request(redirect_url)
    answer = idp.respond(
        sp_entity_id=request["issuer"],
        acs_url=request["acs"],
        subject=subject,
        attributes=attributes,
        in_response_to=request["id"],
        now=now,
        **respond,
    )
    return post_acs(client, request["acs"], answer)


def run_saml_test(
    client: TestClient, tenant: Tenant, idp: SamlIdp, connection_id: str, *, now: datetime
) -> dict[str, Any]:
    started = client.post(
        connections_url(tenant, f"/{connection_id}/test"), headers=tenant.headers, json={}
    )
    assert started.status_code == 200, started.text
    resp = saml_answer(
        client,
        idp,
        started.json()["redirect_url"],
        now=now,
        subject="it-admin",
        attributes={"email": ["it-admin@example.com"]},
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())
