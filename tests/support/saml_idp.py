"""A SAML 2.0 identity provider for the tests, made with pysaml2 in the test process: it has
its own key and certificate, publishes its metadata, reads the app's AuthnRequests (HTTP-
Redirect) and signs real responses with xmlsec1 (RSA-SHA256). Its responses can be spoiled
on purpose before they are signed (`before_signing`) or after (the test edits the bytes).
"""

from __future__ import annotations

import base64
import html
import secrets
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree as ET

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.sigver import pre_signature_part
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from tenantry.kit.clock import Clock

PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
for prefix, uri in (("samlp", SAMLP), ("saml", SAML), ("ds", DS)):
    ET.register_namespace(prefix, uri)


def _key_and_cert(folder: Path, name: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class SamlIdp:
    def __init__(self, folder: Path, *, entity_id: str = "https://idp.example.com/saml") -> None:
        self.folder = folder
        self.entity_id = entity_id
        self.key_file, self.cert_file = _key_and_cert(folder, f"idp-{secrets.token_hex(3)}")
        self.sso_url = f"{entity_id}/sso"
        self._server: Server | None = None

    def _config(self, sp_metadata: str | None) -> IdPConfig:
        conf: dict[str, Any] = {
            "entityid": self.entity_id,
            "xmlsec_binary": shutil.which("xmlsec1"),
            "key_file": str(self.key_file),
            "cert_file": str(self.cert_file),
            "service": {
                "idp": {
                    "name": "Test IdP",
                    "endpoints": {
                        "single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]
                    },
                    "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": None}},
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "sign_assertion": True,
                }
            },
            "allow_unknown_attributes": True,
        }
        if sp_metadata is not None:
            conf["metadata"] = {"inline": [sp_metadata]}
        config = IdPConfig()
        config.load(conf)
        return config

    def serve(self, *, clock: Clock, subject: str, attributes: dict[str, list[str]]) -> LoginPage:
        """Serve the IdP's sign-in page on loopback (its metadata names it from now on)."""
        page = LoginPage(self, clock, subject, attributes)
        self.sso_url = page.url
        return page

    def metadata(self) -> str:
        return str(entity_descriptor(self._config(None)))

    def trust(self, sp_metadata: str) -> None:
        """Know the app's SP (its entity id, ACS), from the metadata it publishes."""
        self._server = Server(config=self._config(sp_metadata))

    @property
    def server(self) -> Server:
        assert self._server is not None, "call trust(sp_metadata) first"
        return self._server

    def read_request(self, redirect_url: str) -> dict[str, str]:
        """The AuthnRequest an app's redirect carries: its id, issuer and ACS URL."""
        query = parse_qs(urlsplit(redirect_url).query)
        parsed = self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
        message = parsed.message
        return {
            "id": message.id,
            "issuer": message.issuer.text,
            "acs": message.assertion_consumer_service_url,
            "relay_state": query.get("RelayState", [""])[0],
        }

    def respond(
        self,
        *,
        sp_entity_id: str,
        acs_url: str,
        subject: str,
        attributes: dict[str, list[str]],
        in_response_to: str | None,
        sign_assertion: bool = True,
        sign_response: bool = False,
        before_signing: Callable[[ET.Element], None] | None = None,
        now: datetime | None = None,
        sign_alg: str = SIG_RSA_SHA256,
        digest_alg: str = DIGEST_SHA256,
    ) -> str:
        """A base64 SAMLResponse for the app's ACS."""
        unsigned = self.server.create_authn_response(
            identity=attributes,
            in_response_to=in_response_to,
            destination=acs_url,
            sp_entity_id=sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=subject),
            authn={"class_ref": PASSWORD_PROTECTED},
            sign_assertion=False,
            sign_response=False,
        )
        root = ET.fromstring(str(unsigned))
        if now is not None:
            _retime(root, now)
        if before_signing is not None:
            before_signing(root)
        xml = ET.tostring(root, encoding="unicode")
        if sign_assertion:
            xml = self._sign(xml, f"{{{SAML}}}Assertion", sign_alg, digest_alg)
        if sign_response:
            xml = self._sign(xml, f"{{{SAMLP}}}Response", sign_alg, digest_alg)
        return base64.b64encode(xml.encode()).decode()

    def _certificate_body(self) -> str:
        lines = self.cert_file.read_text().strip().splitlines()
        return "".join(line for line in lines if not line.startswith("-----"))

    def _sign(self, xml: str, tag: str, sign_alg: str, digest_alg: str) -> str:
        root = ET.fromstring(xml)
        node = root if root.tag == tag else root.find(tag)
        assert node is not None, tag
        ident = node.get("ID")
        template = pre_signature_part(
            ident=ident,
            public_key=self._certificate_body(),
            sign_alg=sign_alg,
            digest_alg=digest_alg,
        )
        signature = ET.fromstring(str(template))
        issuer = node.find(f"{{{SAML}}}Issuer")
        position = list(node).index(issuer) + 1 if issuer is not None else 0
        node.insert(position, signature)
        class_name = "urn:oasis:names:tc:SAML:2.0:" + (
            "assertion:Assertion" if tag.endswith("Assertion") else "protocol:Response"
        )
        return str(
            self.server.sec.sign_statement(
                ET.tostring(root, encoding="unicode"), class_name, node_id=ident
            )
        )


class LoginPage:
    """The IdP's sign-in page on a loopback port: it signs `subject` in at once and posts the
    signed response to the app's ACS from the browser (the HTTP-POST binding's auto-submitted
    form), as an IdP does once its user has signed in."""

    def __init__(
        self, idp: SamlIdp, clock: Clock, subject: str, attributes: dict[str, list[str]]
    ) -> None:
        page = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = page.answer(f"http://127.0.0.1{self.path}").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.idp, self.clock, self.subject, self.attributes = idp, clock, subject, attributes
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/sso"

    def answer(self, request_url: str) -> str:
        request = self.idp.read_request(request_url)
        response = self.idp.respond(
            sp_entity_id=request["issuer"],
            acs_url=request["acs"],
            subject=self.subject,
            attributes=self.attributes,
            in_response_to=request["id"],
            now=self.clock.now(),
        )
        return (
            "<!doctype html><html lang=en><title>Signing in</title><body>"
            f'<form method=post action="{html.escape(request["acs"])}">'
            f'<input type=hidden name=SAMLResponse value="{response}">'
            f'<input type=hidden name=RelayState value="{html.escape(request["relay_state"])}">'
            "<noscript><button>Continue</button></noscript></form>"
            "<script>document.forms[0].submit()</script></body></html>"
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _retime(root: ET.Element, now: datetime) -> None:
    """Time conditions that hold by the app's clock (`now`, which tests move) as well as by the
    wall clock pysaml2 reads: from the earlier of the two to five minutes past the later."""
    wall = datetime.now(UTC)
    start = min(now, wall).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (max(now, wall) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for element in root.iter():
        if "NotBefore" in element.attrib:
            element.set("NotBefore", start)
        for name in ("NotOnOrAfter", "SessionNotOnOrAfter"):
            if name in element.attrib:
                element.set(name, end)


def post_binding(saml_response: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the browser's POST to the ACS."""
    from urllib.parse import urlencode

    body = urlencode({"SAMLResponse": saml_response, "RelayState": ""}).encode()
    return body, {"content-type": "application/x-www-form-urlencoded"}


__all__ = ["BINDING_HTTP_POST", "SamlIdp", "post_binding"]
