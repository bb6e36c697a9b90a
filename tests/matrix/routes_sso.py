"""Route-table entries of enterprise sign-in (see tests/matrix/routes.py for what an entry says).

A world gets a SAML connection (tested and enabled, IdP-initiated allowed) to a pysaml2 IdP of
its own, and a pending domain whose TXT record a DNS server on loopback publishes; the shared
app's resolver asks that server. The SAML ACS case prepares its signed response while its path
parameters are worked out (before the suites snapshot the database): the sign-in it answers
was started, with `return_to=/healthz`, by then.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from matrix.routes import PARAMS, PUBLIC, SELF, WORLD_EXTRAS, RouteCase, World, WorldExtra, _case
from support.dns_server import shared_dns
from support.saml_idp import SamlIdp, post_binding
from tenantry.authz.catalog import Permission as P
from tenantry.sso.dns import DnsTxtResolver
from tenantry.sso.models import SsoConnection


def _idp(world: World) -> SamlIdp:
    return world.once("saml_idp", lambda w: SamlIdp(Path(tempfile.mkdtemp(prefix="idp-"))))


def _saml_connection(world: World, *, enabled: bool) -> str:
    idp = _idp(world)
    resp = world.client.post(
        f"/api/v1/orgs/{world.org_id}/sso/connections",
        headers=world.owner.headers,
        json={
            "name": "Corporate SAML",
            "protocol": "saml",
            "idp_metadata_xml": idp.metadata(),
            "settings": {"allow_idp_initiated": True},
        },
    )
    assert resp.status_code == 201, resp.text
    conn_id = str(resp.json()["id"])
    idp.trust(world.client.get(f"/api/v1/auth/sso/saml/{conn_id}/metadata").text)
    # As after a successful test sign-in (tests/sso hold the real ones to account).
    app: Any = world.client.app
    with app.state.db.session(write=True) as session:
        conn = session.get(SsoConnection, conn_id)
        assert conn is not None
        conn.tested_revision = conn.revision
        conn.enabled = enabled
        session.commit()
    return conn_id


def connection(world: World) -> str:
    return str(world.once("sso_connection", lambda w: _saml_connection(w, enabled=False)))


def enabled_connection(world: World) -> str:
    return str(world.once("sso_enabled", lambda w: _saml_connection(w, enabled=True)))


def domain(world: World) -> str:
    def make(w: World) -> str:
        dns = shared_dns()
        app: Any = w.client.app
        app.state.sso_txt_resolver = DnsTxtResolver([dns.address])
        name = f"{w.label}-{secrets.token_hex(4)}.example.com"
        resp = w.client.post(
            f"/api/v1/orgs/{w.org_id}/domains", headers=w.owner.headers, json={"domain": name}
        )
        assert resp.status_code == 201, resp.text
        dns.publish_txt(resp.json()["record_name"], resp.json()["record_value"])
        return str(resp.json()["id"])

    return str(world.once("sso_domain", make))


_pending_answer: list[tuple[bytes, dict[str, str]]] = []
_verifiers: list[str] = []


def acs_target(world: World) -> str:
    """The enabled connection, with a sign-in started and the IdP's signed answer to it ready
    for `raw` to post."""
    conn_id = enabled_connection(world)
    started = world.client.post(
        "/api/v1/auth/sso/start", json={"connection_id": conn_id, "return_to": "/healthz"}
    )
    assert started.status_code == 200, started.text
    idp = _idp(world)
    request = idp.read_request(started.json()["redirect_url"])
    app: Any = world.client.app
    answer = idp.respond(
        sp_entity_id=request["issuer"],
        acs_url=request["acs"],
        subject=f"{world.label}-person",
        attributes={"email": [f"person-{secrets.token_hex(3)}@example.com"]},
        in_response_to=request["id"],
        now=app.state.clock.now(),
    )
    _pending_answer[:] = [post_binding(answer)]
    _verifiers[:] = [started.json()["verifier"]]
    return conn_id


def signed_in_code(world: World) -> dict[str, str]:
    """The one-time code and verifier of a SAML sign-in just finished through the world's IdP."""
    acs_target(world)
    started_verifier = _verifiers.pop()
    content, headers = _pending()
    conn_id = enabled_connection(world)
    resp = world.client.post(
        f"/api/v1/auth/sso/saml/{conn_id}/acs",
        content=content,
        headers=headers,
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    code = parse_qs(urlsplit(resp.headers["location"]).query)["sso_code"][0]
    return {"code": code, "verifier": started_verifier}


def _pending() -> tuple[bytes, dict[str, str]]:
    """The answer acs_target prepared; once it is used, a post without one (a suite that
    sends the route several requests gets the IdP's answer first, then refusals)."""
    if _pending_answer:
        return _pending_answer.pop()
    return b"RelayState=", {"content-type": "application/x-www-form-urlencoded"}


def _seed(world: World) -> None:
    connection(world)
    enabled_connection(world)
    domain(world)


PARAMS["connection"] = connection
PARAMS["domain_id"] = domain
WORLD_EXTRAS.append(
    WorldExtra(
        seed=_seed,
        ids=lambda w: {connection(w), enabled_connection(w), domain(w)},
    )
)

MAPPING = {"rules": [{"when": {"group": "ml"}, "org_role": "member"}], "default": None}

CASES: list[RouteCase] = [
    _case(
        "POST",
        "/orgs/{org}/sso/connections",
        P.SSO_MANAGE,
        scope="org",
        body=lambda w: {
            "name": "Okta",
            "protocol": "oidc",
            "preset": "okta",
            "settings": {"domain": "acme.okta.com", "client_id": "0oa1"},
            "client_secret": "not-a-real-secret",
        },
    ),
    _case("GET", "/orgs/{org}/sso/connections", P.SSO_READ, scope="org"),
    _case("GET", "/orgs/{org}/sso/connections/{connection}", P.SSO_READ, scope="org"),
    _case(
        "PATCH",
        "/orgs/{org}/sso/connections/{connection}",
        P.SSO_MANAGE,
        scope="org",
        body=lambda w: {"name": "Renamed IdP"},
    ),
    _case("DELETE", "/orgs/{org}/sso/connections/{connection}", P.SSO_MANAGE, scope="org"),
    _case(
        "PUT",
        "/orgs/{org}/sso/connections/{connection}/mapping",
        P.SSO_MANAGE,
        scope="org",
        body=lambda w: MAPPING,
    ),
    _case(
        "POST",
        "/orgs/{org}/sso/connections/{connection}/test",
        P.SSO_MANAGE,
        scope="org",
        body=lambda w: {},
    ),
    _case("GET", "/orgs/{org}/sso/connections/{connection}/test", P.SSO_READ, scope="org"),
    _case("POST", "/orgs/{org}/sso/connections/{connection}/enable", P.SSO_MANAGE, scope="org"),
    _case(
        "POST",
        "/orgs/{org}/sso/connections/{connection}/disable",
        P.SSO_MANAGE,
        scope="org",
        params={"connection": enabled_connection},
    ),
    _case(
        "GET",
        "/orgs/{org}/sso/policy",
        P.SSO_READ,
        scope="org",
        idless="no domain is verified in the seeded world (that needs DNS): nothing to name",
    ),
    _case(
        "PUT",
        "/orgs/{org}/sso/policy",
        P.SSO_ENFORCE,
        scope="org",
        body=lambda w: {"enforced": False, "break_glass": [w.owner.id]},
    ),
    _case(
        "POST",
        "/orgs/{org}/domains",
        P.SSO_MANAGE,
        scope="org",
        body=lambda w: {"domain": f"{w.label}-{secrets.token_hex(4)}.example.com"},
    ),
    _case("GET", "/orgs/{org}/domains", P.SSO_READ, scope="org"),
    _case("POST", "/orgs/{org}/domains/{domain_id}/verify", P.SSO_MANAGE, scope="org"),
    _case("DELETE", "/orgs/{org}/domains/{domain_id}", P.SSO_MANAGE, scope="org"),
    # signing in
    _case(
        "POST",
        "/auth/sso/discover",
        PUBLIC,
        body=lambda w: {"email": w.owner.email},
        audit="a question answered from what is public to everyone (home-realm discovery)",
    ),
    _case(
        "POST",
        "/auth/sso/start",
        PUBLIC,
        body=lambda w: {"connection_id": enabled_connection(w)},
    ),
    _case("POST", "/me/sso/link", SELF, body=lambda w: {"connection_id": enabled_connection(w)}),
    _case(
        "GET",
        "/auth/sso/oidc/callback",
        PUBLIC,
        # An identity provider's redirect back, not a read: without an answer it is refused.
        read=False,
    ),
    _case(
        "POST",
        "/auth/sso/saml/{connection}/acs",
        PUBLIC,
        params={"connection": acs_target},
        raw=_pending,
    ),
    _case("GET", "/auth/sso/saml/{connection}/metadata", PUBLIC),
    _case("POST", "/auth/sso/exchange", PUBLIC, body=signed_in_code),
]
