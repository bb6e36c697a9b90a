"""What protects every page: the response headers (a strict Content-Security-Policy, no
framing, no sniffing, no caching of pages that may hold a secret) and the same-origin check of
every form a page sends."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantry.http.state import app_state
from tenantry.kit.errors import Forbidden

# No inline script or style anywhere: htmx is configured not to add styles, Alpine is its CSP
# build, and every script is a file under /static/.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
PAGE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # An invitation's or a password reset's token is in the page's address: no other site is
    # told it through the Referer header.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    # Pages show secrets once (a new API key) and personal data: never kept by a cache.
    (b"cache-control", b"no-store"),
]
STATIC_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class PageHeaders:
    """Adds the page headers to every response of a dashboard route, whatever answered it (the
    page, a redirect, an error page), and the static headers to the assets."""

    def __init__(self, app: ASGIApp, *, is_page: object, static_prefix: str) -> None:
        self.app = app
        self._is_page = is_page
        self._static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra: list[tuple[bytes, bytes]] = []
                if scope["path"].startswith(self._static_prefix):
                    extra = STATIC_HEADERS
                elif callable(self._is_page) and self._is_page(scope):
                    extra = PAGE_HEADERS
                if extra:
                    names = {name for name, _ in extra}
                    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                    message["headers"] = kept + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origins(request: Request) -> set[str]:
    """The origins this service is reached at: the request's own, and the configured base URL's
    (behind a proxy that terminates TLS the request arrives as http)."""
    found = {_origin_of(str(request.base_url))}
    configured = app_state(request).settings.base_url
    if configured:
        found.add(_origin_of(configured))
    return {o for o in found if o}


def check_same_origin(request: Request) -> None:
    """403 unless the form came from one of our own pages: its `Origin` header (every current
    browser sends one with a form's POST), or failing that its `Referer`, names this service."""
    sent = request.headers.get("origin")
    origin = _origin_of(sent) if sent and sent != "null" else None
    if sent is None:
        referer = request.headers.get("referer")
        origin = _origin_of(referer) if referer else None
    if origin is None or origin not in own_origins(request):
        raise Forbidden(
            "This form was not sent from one of this service's pages; nothing was changed",
            code="cross_site_request",
        )


def refuse_bad_token() -> Forbidden:
    return Forbidden(
        "This form has expired or was not sent from this session; reload the page and try again",
        code="csrf_token_invalid",
    )
