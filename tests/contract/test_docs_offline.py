"""/docs and /redoc work on a machine with no route to the internet: the pages and the assets
they load are served by the app itself, and nothing they hold makes a browser fetch from
another origin (the pages' Content-Security-Policy forbids it; tests/web's browser run checks
the rendering with the network cut)."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from tenantry.http.docs import CONTENT_SECURITY_POLICY

PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")
# Where a page names what it loads: attributes, and CSS `url(…)` / `@import`.
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""")
ABSOLUTE = re.compile(r"""https?://[^\s"'`)<>]*""")
# An absolute address in a place where a bundle could load from it (a property or attribute
# ending in src, href or url).
LOADABLE = re.compile(r"""[A-Za-z]*(?:src|href|url)\s*[:=]\s*["'`](https?://[^"'`\s)]*)""", re.I)

# What the shipped bundles hold in such places, and why none of it is fetched. A new version of
# the assets that adds to this list fails here until someone has read what the new one does.
KNOWN_IN_BUNDLES = {
    # Swagger UI's autolinker prefixes bare host names with a scheme: text, not a request.
    "http://": "a link's text",
    # Swagger UI's online validator badge; the page sets `validatorUrl: null`.
    "https://validator.swagger.io/validator": "turned off by the page",
    # ReDoc's footer: a link, and the Redocly logo, which img-src 'self' blocks (it hides
    # the image when loading fails).
    "https://redocly.com/redoc/": "a link",
    "https://cdn.redoc.ly/redoc/logo-mini.svg": "blocked by the policy",
    # Metadata ReDoc writes into a converted Swagger 2 document.
    "https://github.com/mermade/oas-kit": "a string in the document",
}


def _references(text: str) -> set[str]:
    return {a or b for a, b in REFERENCE.findall(text)}


def _same_origin(reference: str) -> bool:
    parts = urlsplit(reference)
    return (not parts.scheme and not parts.netloc) or parts.scheme == "data"


@pytest.mark.parametrize("page", PAGES)
def test_the_page_and_what_it_loads_come_from_the_app(client: TestClient, page: str) -> None:
    resp = client.get(page)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert not ABSOLUTE.findall(resp.text), ABSOLUTE.findall(resp.text)
    references = _references(resp.text)
    assert all(_same_origin(r) for r in references), references
    for reference in references:
        asset = client.get(urljoin(page, reference))
        assert asset.status_code == 200, reference
        if reference.endswith(".css"):
            # A stylesheet loads what its url() and @import name, with no script to stop it.
            nested = _references(asset.text) | set(
                re.findall(r"@import\s+[\"']([^\"']+)", asset.text)
            )
            assert all(_same_origin(r) for r in nested), nested


def test_the_openapi_document_the_pages_read_is_same_origin(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        text = client.get(page).text
        assert "'/openapi.json'" in text or '"/openapi.json"' in text, text


def test_swagger_ui_never_sends_the_document_to_the_public_validator(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text


def test_the_policy_lets_the_browser_fetch_from_no_other_origin() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    for name, sources in directives.items():
        for source in sources.split():
            assert source in ("'self'", "'unsafe-inline'", "data:", "blob:"), (name, source)


def test_what_the_bundles_could_load_from_elsewhere_is_known(client: TestClient) -> None:
    found: set[str] = set()
    for page in ("/docs", "/redoc"):
        for reference in _references(client.get(page).text):
            if reference.endswith(".js"):
                found |= set(LOADABLE.findall(client.get(urljoin(page, reference)).text))
    assert found == set(KNOWN_IN_BUNDLES), found ^ set(KNOWN_IN_BUNDLES)
