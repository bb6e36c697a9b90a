"""The service provider's side of SAML 2.0, by pysaml2 (signatures checked by xmlsec1): the SP
metadata of a connection, the AuthnRequest (HTTP-Redirect binding) and the response at the
assertion consumer service (HTTP-POST binding).

What is required of a response, beyond what pysaml2 checks (a signature by a key of the IdP's
metadata over the response or the assertion, audience, recipient/destination, InResponseTo
against the request we sent, time conditions with `accepted_time_diff`):
- every signature and digest uses SHA-256 or stronger (no SHA-1);
- the assertion's issuer is the connection's IdP;
- the time conditions hold by the service's own clock too;
- a persistent or email NameID (a transient one names nobody twice).
Replay (the same assertion ID once more) is refused by the caller, which keeps the IDs seen.
"""

from __future__ import annotations

import base64
import binascii
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from defusedxml import ElementTree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_TRANSIENT

DSIG: Final = "{http://www.w3.org/2000/09/xmldsig#}"
PROTOCOL: Final = "{urn:oasis:names:tc:SAML:2.0:protocol}"
STRONG_SIGNATURES: Final = frozenset(
    {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    }
)
STRONG_DIGESTS: Final = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
MAX_RESPONSE_BYTES: Final = 256 * 1024


class SamlError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ServiceProvider:
    """One connection as the SP pysaml2 is configured for."""

    connection_id: str
    base_url: str
    idp_entity_id: str
    idp_metadata_xml: str
    allow_idp_initiated: bool
    skew_seconds: int

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/api/v1/auth/sso/saml/{self.connection_id}/metadata"

    @property
    def acs_url(self) -> str:
        return f"{self.base_url}/api/v1/auth/sso/saml/{self.connection_id}/acs"


@dataclass(frozen=True)
class SamlAssertion:
    issuer: str
    subject: str
    attributes: dict[str, list[str]]
    assertion_id: str
    in_response_to: str | None
    not_on_or_after: datetime | None


def _config(sp: ServiceProvider, *, with_idp: bool = True) -> SPConfig:
    conf: dict[str, Any] = {
        "entityid": sp.entity_id,
        "xmlsec_binary": shutil.which("xmlsec1") or "/usr/bin/xmlsec1",
        "service": {
            "sp": {
                "name": "Tenantry",
                "endpoints": {"assertion_consumer_service": [(sp.acs_url, BINDING_HTTP_POST)]},
                "allow_unsolicited": sp.allow_idp_initiated,
                "authn_requests_signed": False,
                "want_assertions_signed": False,
                "want_response_signed": False,
                "want_assertions_or_response_signed": True,
                "only_use_keys_in_metadata": True,
            }
        },
        "accepted_time_diff": sp.skew_seconds,
        "allow_unknown_attributes": True,
    }
    if with_idp:
        conf["metadata"] = {"inline": [sp.idp_metadata_xml]}
    config = SPConfig()
    config.load(conf)
    return config


def sp_metadata(sp: ServiceProvider) -> str:
    return str(entity_descriptor(_config(sp, with_idp=False)))


def idp_entity_ids(metadata_xml: str) -> list[str]:
    """The IdPs a metadata document describes (to check an upload and pick the entity id)."""
    try:
        root = ElementTree.fromstring(metadata_xml.encode())
    except Exception as exc:  # defusedxml's refusals and ParseError alike
        raise SamlError("invalid_idp_metadata", f"The IdP metadata is not XML: {exc}") from None
    md = "{urn:oasis:names:tc:SAML:2.0:metadata}"
    entities = [root] if root.tag == f"{md}EntityDescriptor" else root.iter(f"{md}EntityDescriptor")
    found = [
        str(e.get("entityID"))
        for e in entities
        if e.get("entityID") and e.find(f"{md}IDPSSODescriptor") is not None
    ]
    if not found:
        raise SamlError("invalid_idp_metadata", "The metadata describes no identity provider")
    return found


def _client(sp: ServiceProvider) -> Saml2Client:
    try:
        return Saml2Client(config=_config(sp))
    except Exception as exc:  # pysaml2 raises bare exceptions on unusable metadata
        raise SamlError("invalid_idp_metadata", f"The IdP metadata is unusable: {exc}") from None


def authn_request(sp: ServiceProvider, *, relay_state: str) -> tuple[str, str]:
    """(the request's ID, the URL that sends the person to the IdP with it)."""
    client = _client(sp)
    request_id, info = client.prepare_for_authenticate(
        entityid=sp.idp_entity_id, relay_state=relay_state, binding=BINDING_HTTP_REDIRECT
    )
    location = dict(info["headers"])["Location"]
    return str(request_id), str(location)


def _decoded(saml_response: str) -> bytes:
    if len(saml_response) > MAX_RESPONSE_BYTES:
        raise SamlError("sso_invalid_response", "The SAML response is too large")
    try:
        return base64.b64decode(saml_response, validate=False)
    except (binascii.Error, ValueError):
        raise SamlError("sso_invalid_response", "The SAML response is not base64") from None


def in_response_to(saml_response: str) -> str | None:
    """The request a response claims to answer, read before any check: only to find the
    attempt whose request ID is then held against the verified response."""
    try:
        root = ElementTree.fromstring(_decoded(saml_response))
    except SamlError:
        raise
    except Exception:
        raise SamlError("sso_invalid_response", "The SAML response is not XML") from None
    if root.tag != f"{PROTOCOL}Response":
        raise SamlError("sso_invalid_response", "This is not a SAML Response")
    value = root.get("InResponseTo")
    return str(value) if value else None


def _check_algorithms(xml: bytes) -> None:
    root = ElementTree.fromstring(xml)
    for method in root.iter(f"{DSIG}SignatureMethod"):
        if method.get("Algorithm") not in STRONG_SIGNATURES:
            raise SamlError(
                "sso_weak_signature",
                f"Signature algorithm {method.get('Algorithm')} is refused; sign with RSA-SHA256",
            )
    for method in root.iter(f"{DSIG}DigestMethod"):
        if method.get("Algorithm") not in STRONG_DIGESTS:
            raise SamlError(
                "sso_weak_signature",
                f"Digest algorithm {method.get('Algorithm')} is refused; use SHA-256",
            )


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def read_response(
    sp: ServiceProvider, saml_response: str, *, request_id: str | None, now: datetime
) -> SamlAssertion:
    """The verified assertion of a response, or SamlError saying why it is refused."""
    xml = _decoded(saml_response)
    _check_algorithms(xml)
    client = _client(sp)
    outstanding = {request_id: "sso"} if request_id else {}
    try:
        resp = client.parse_authn_request_response(
            saml_response, BINDING_HTTP_POST, outstanding=outstanding
        )
    except Exception as exc:  # pysaml2 raises a dozen unrelated types for a refused response
        raise SamlError("sso_invalid_response", f"The SAML response is refused: {exc}") from None
    if resp is None or resp.assertion is None:
        raise SamlError("sso_invalid_response", "The SAML response carries no usable assertion")
    if request_id is not None and resp.in_response_to != request_id:
        raise SamlError("sso_invalid_response", "The response answers another request")
    if request_id is None and resp.in_response_to:
        raise SamlError("sso_invalid_response", "The response answers a request we did not send")
    assertion = resp.assertion
    issuer = assertion.issuer.text.strip() if assertion.issuer is not None else ""
    if issuer != sp.idp_entity_id:
        raise SamlError("sso_invalid_response", f"The assertion was issued by {issuer!r}")
    name_id = resp.name_id
    if name_id is None or not (name_id.text or "").strip():
        raise SamlError("sso_invalid_response", "The assertion names no subject")
    if name_id.format == NAMEID_FORMAT_TRANSIENT:
        raise SamlError(
            "sso_invalid_response",
            "The IdP sent a transient NameID; configure a persistent or email NameID",
        )
    skew = timedelta(seconds=sp.skew_seconds)
    conditions = assertion.conditions
    not_before = _instant(conditions.not_before) if conditions is not None else None
    not_after = _instant(conditions.not_on_or_after) if conditions is not None else None
    for confirmation in assertion.subject.subject_confirmation or []:
        data = confirmation.subject_confirmation_data
        limit = _instant(data.not_on_or_after) if data is not None else None
        if limit is not None and (not_after is None or limit < not_after):
            not_after = limit
    if not_before is not None and now + skew < not_before:
        raise SamlError("sso_invalid_response", "The assertion is not valid yet")
    if not_after is not None and now - skew >= not_after:
        raise SamlError("sso_invalid_response", "The assertion has expired")
    attributes: dict[str, list[str]] = {}
    for statement in assertion.attribute_statement or []:
        for attribute in statement.attribute or []:
            values = [str(v.text).strip() for v in attribute.attribute_value or [] if v.text]
            attributes.setdefault(str(attribute.name), []).extend(values)
    return SamlAssertion(
        issuer=issuer,
        subject=name_id.text.strip(),
        attributes=attributes,
        assertion_id=str(assertion.id),
        in_response_to=resp.in_response_to,
        not_on_or_after=not_after,
    )
