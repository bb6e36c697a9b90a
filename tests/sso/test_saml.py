"""SAML 2.0 sign-in with a pysaml2 IdP in the test process signing real responses (xmlsec1):
a good response is accepted; tampered, unsigned, signature-wrapped, wrong-audience, expired,
SHA-1 and replayed ones are refused, and nobody signs in."""

from __future__ import annotations

import base64
import copy
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient

from conftest import Factory, Tenant, assert_problem, bearer, count_rows
from support.saml_idp import SAML, SAMLP, SamlIdp
from support.sso import (
    create_saml,
    enable,
    exchange,
    post_acs,
    query_of,
    run_saml_test,
    saml_answer,
    set_mapping,
    start_sign_in,
)
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database

PERSON = {"email": ["ada@example.com"], "groups": ["ml-admins", "everyone"]}


def enabled_saml(
    client: TestClient, factory: Factory, idp: SamlIdp, clock: FrozenClock, **settings: Any
) -> tuple[Tenant, dict[str, Any]]:
    tenant = factory.tenant()
    conn = create_saml(client, tenant, idp, **settings)
    result = run_saml_test(client, tenant, idp, conn["id"], now=clock.now())
    assert result["tested"] is True, result
    enable(client, tenant, conn["id"])
    return tenant, conn


def test_a_signed_response_signs_the_person_in_with_mapped_roles(
    client: TestClient, factory: Factory, saml_idp: SamlIdp, clock: FrozenClock
) -> None:
    tenant, conn = enabled_saml(client, factory, saml_idp, clock)
    set_mapping(
        client,
        tenant,
        conn["id"],
        {
            "rules": [
                {
                    "when": {"group": "ml-admins"},
                    "org_role": "admin",
                    "teams": [{"team": tenant.team_id, "role": "editor"}],
                }
            ],
            "default": None,
        },
    )
    started = start_sign_in(client, connection_id=conn["id"])
    resp = saml_answer(
        client, saml_idp, started["redirect_url"], now=clock.now(), subject="ada", attributes=PERSON
    )
    tokens = exchange(client, resp, started["verifier"])
    assert tokens.status_code == 200, tokens.text
    me = client.get("/api/v1/me", headers=bearer(tokens.json()["access_token"])).json()
    assert me["user"]["email"] == "ada@example.com"
    assert [(o["org_id"], o["role"]) for o in me["organizations"]] == [(tenant.org_id, "admin")]
    assert [(t["team_id"], t["role"]) for t in me["teams"]] == [(tenant.team_id, "editor")]


def _first(root: ET.Element, tag: str) -> ET.Element:
    found = root.find(f".//{tag}")
    assert found is not None, tag
    return found


def _edit_signed(answer: str, edit: Any) -> str:
    root = ET.fromstring(base64.b64decode(answer))
    edit(root)
    return base64.b64encode(ET.tostring(root)).decode()


def _tamper(root: ET.Element) -> None:
    value = _first(root, f"{{{SAML}}}AttributeValue")
    value.text = "mallory@example.com"


def _wrap(root: ET.Element) -> None:
    """Signature wrapping: a forged assertion (another person) goes first, while the signed
    original stays in the response for the signature check to find."""
    signed = _first(root, f"{{{SAML}}}Assertion")
    forged = copy.deepcopy(signed)
    forged.set("ID", "forged-assertion")
    for signature in forged.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        forged.remove(signature)
    _first(forged, f"{{{SAML}}}NameID").text = "mallory"
    root.insert(list(root).index(signed), forged)


def _wrong_audience(root: ET.Element) -> None:
    _first(root, f"{{{SAML}}}Audience").text = "https://another-sp.example.com/saml"


def _expired(root: ET.Element) -> None:
    for element in root.iter():
        if "NotOnOrAfter" in element.attrib:
            element.set("NotOnOrAfter", "2020-01-01T00:00:00Z")


SIG_RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
DIGEST_SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


@pytest.mark.parametrize(
    "spoiled",
    ["tampered", "unsigned", "wrapped", "wrong audience", "expired", "sha-1"],
)
def test_a_spoiled_response_is_refused(
    client: TestClient,
    factory: Factory,
    saml_idp: SamlIdp,
    clock: FrozenClock,
    database: Database,
    spoiled: str,
) -> None:
    _, conn = enabled_saml(client, factory, saml_idp, clock)
    started = start_sign_in(client, connection_id=conn["id"])
    request = saml_idp.read_request(started["redirect_url"])
    respond: dict[str, Any] = {
        "sp_entity_id": request["issuer"],
        "acs_url": request["acs"],
        "subject": "ada",
        "attributes": PERSON,
        "in_response_to": request["id"],
        "now": clock.now(),
    }
    if spoiled == "unsigned":
        respond["sign_assertion"] = False
    if spoiled == "wrong audience":
        respond["before_signing"] = _wrong_audience
    if spoiled == "expired":
        respond["before_signing"] = _expired
    if spoiled == "sha-1":
        respond |= {"sign_alg": SIG_RSA_SHA1, "digest_alg": DIGEST_SHA1}
    answer = saml_idp.respond(**respond)
    if spoiled == "tampered":
        answer = _edit_signed(answer, _tamper)
    if spoiled == "wrapped":
        answer = _edit_signed(answer, _wrap)
    users_before = count_rows(database)["users"]
    resp = post_acs(client, request["acs"], answer)
    error = query_of(resp)["sso_error"]
    assert error in ("sso_invalid_response", "sso_weak_signature"), error
    if spoiled == "sha-1":
        assert error == "sso_weak_signature"
    assert count_rows(database)["users"] == users_before
    assert count_rows(database)["sso_identities"] == 0


def test_a_replayed_response_is_refused(
    client: TestClient, factory: Factory, saml_idp: SamlIdp, clock: FrozenClock
) -> None:
    _, conn = enabled_saml(client, factory, saml_idp, clock)
    started = start_sign_in(client, connection_id=conn["id"])
    request = saml_idp.read_request(started["redirect_url"])
    answer = saml_idp.respond(
        sp_entity_id=request["issuer"],
        acs_url=request["acs"],
        subject="ada",
        attributes=PERSON,
        in_response_to=request["id"],
        now=clock.now(),
    )
    assert "sso_code" in query_of(post_acs(client, request["acs"], answer))
    assert_problem(post_acs(client, request["acs"], answer), 401, "sso_replayed")


def test_a_response_to_no_request_of_ours_is_refused(
    client: TestClient, factory: Factory, saml_idp: SamlIdp, clock: FrozenClock
) -> None:
    _, conn = enabled_saml(client, factory, saml_idp, clock)
    answer = saml_idp.respond(
        sp_entity_id=f"http://testserver/api/v1/auth/sso/saml/{conn['id']}/metadata",
        acs_url=f"http://testserver/api/v1/auth/sso/saml/{conn['id']}/acs",
        subject="ada",
        attributes=PERSON,
        in_response_to="id-never-sent",
        now=clock.now(),
    )
    acs = f"http://testserver/api/v1/auth/sso/saml/{conn['id']}/acs"
    assert_problem(post_acs(client, acs, answer), 401, "sso_unknown_state")


def test_idp_initiated_sign_in_only_where_allowed(
    client: TestClient, factory: Factory, saml_idp: SamlIdp, clock: FrozenClock
) -> None:
    tenant, conn = enabled_saml(client, factory, saml_idp, clock)
    acs = f"http://testserver/api/v1/auth/sso/saml/{conn['id']}/acs"

    def unsolicited() -> str:
        return saml_idp.respond(
            sp_entity_id=f"http://testserver/api/v1/auth/sso/saml/{conn['id']}/metadata",
            acs_url=acs,
            subject="ada",
            attributes=PERSON,
            in_response_to=None,
            now=clock.now(),
        )

    assert_problem(post_acs(client, acs, unsolicited()), 403, "sso_unsolicited")
    resp = client.patch(
        f"/api/v1/orgs/{tenant.org_id}/sso/connections/{conn['id']}",
        headers=tenant.headers,
        json={"settings": {"allow_idp_initiated": True}},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["enabled"] is True  # not a protocol setting: no new test needed
    landed = post_acs(client, acs, unsolicited())
    code = query_of(landed)["sso_code"]
    tokens = client.post("/api/v1/auth/sso/exchange", json={"code": code})
    assert tokens.status_code == 200, tokens.text


def test_the_sp_metadata_names_the_acs_and_is_public(
    client: TestClient, factory: Factory, saml_idp: SamlIdp
) -> None:
    tenant = factory.tenant()
    conn = create_saml(client, tenant, saml_idp)
    sp = conn["service_provider"]
    resp = client.get(f"/api/v1/auth/sso/saml/{conn['id']}/metadata")
    root = ET.fromstring(resp.text)
    assert root.get("entityID") == sp["entity_id"]
    acs = root.find(".//{urn:oasis:names:tc:SAML:2.0:metadata}AssertionConsumerService")
    assert acs is not None and acs.get("Location") == sp["acs_url"]
    assert SAMLP  # the protocol namespace the responses use
