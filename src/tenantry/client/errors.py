"""Typed errors of the SDK, built from the server's problem+json answers (RFC 9457).

Every failed call raises a `TenantryError` whose class says what kind of failure it was, so a
caller can write `except NotFound:` instead of comparing status codes. The machine-readable
`code` (e.g. `slug_taken`, `invitation_expired`) is the part to branch on for finer cases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx  # only named in annotations: the error classes load without it


class TenantryError(Exception):
    """A request that Tenantry refused or could not answer."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.body: dict[str, Any] = body or {}

    @property
    def request_id(self) -> str | None:
        """The server's id of the failed request, to quote when reporting a problem."""
        value = self.body.get("request_id")
        return value if isinstance(value, str) else None


class MfaRequired(Exception):
    """`login` found a right password of someone with a second factor: finish with
    `complete_mfa(step.mfa_token, code)` (after `start_mfa_enrolment_for_sign_in` when
    `step.enrolment_required`: an org's policy requires a second factor they do not have)."""

    def __init__(self, step: Any) -> None:
        super().__init__("a second factor is required to sign in")
        self.step = step

    @property
    def mfa_token(self) -> str:
        return str(self.step.mfa_token)

    @property
    def enrolment_required(self) -> bool:
        return bool(self.step.enrolment_required)


class BadRequest(TenantryError):
    """400: the request could not be understood (malformed JSON, a bad cursor)."""


class Unauthenticated(TenantryError):
    """401: no credentials, or credentials the server no longer accepts."""


class PaymentRequired(TenantryError):
    """402: the organization's plan does not allow this; `body` may carry an upgrade hint."""


class Forbidden(TenantryError):
    """403: signed in, but the role is too weak; `detail` names the missing permission."""


class NotFound(TenantryError):
    """404: the thing does not exist, or belongs to a tenant the caller cannot see."""


class Conflict(TenantryError):
    """409: the change collides with the current state (duplicate slug, already a member)."""


class Gone(TenantryError):
    """410: the thing existed but can no longer be used (an expired or used invitation)."""


class ValidationFailed(TenantryError):
    """422: the request was understood but a field is invalid; `errors` lists them."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        found = self.body.get("errors")
        return found if isinstance(found, list) else []


class RateLimited(TenantryError):
    """429: too many requests; wait `retry_after` seconds (when the server said)."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ServerError(TenantryError):
    """5xx: the server failed; the request may or may not have taken effect."""


class ConnectionFailed(TenantryError):
    """The server could not be reached at all (status 0: no HTTP answer was received)."""


_BY_STATUS: dict[int, type[TenantryError]] = {
    400: BadRequest,
    401: Unauthenticated,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: ValidationFailed,
    429: RateLimited,
}


def error_class(status: int) -> type[TenantryError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, TenantryError)


def _problem_body(response: httpx.Response) -> dict[str, Any]:
    # A proxy in front of Tenantry may answer with HTML or nothing; keep what can be read.
    try:
        parsed = response.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date; rare enough not to parse


def error_from_response(response: httpx.Response) -> TenantryError:
    """The typed error for a non-2xx response."""
    body = _problem_body(response)
    status = response.status_code
    code = str(body.get("code") or "http_error")
    title = str(body.get("title") or response.reason_phrase or "HTTP error")
    detail = str(body.get("detail") or "")
    if not detail and not body:
        detail = response.text.strip()[:200] or title
    cls = error_class(status)
    if cls is RateLimited:
        return RateLimited(status, code, title, detail, body, retry_after=_retry_after(response))
    return cls(status, code, title, detail, body)


def connection_failed(base_url: str, exc: httpx.TransportError) -> ConnectionFailed:
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed(
        0, "connection_failed", "Connection failed", f"cannot reach {base_url}: {reason}"
    )
