"""Problem details (RFC 9457): every error the API returns is one of these, with a stable `code`."""

from __future__ import annotations

from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://tenantry.dev/problems/"


class Problem(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal server error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self, *, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


class BadRequest(Problem):
    status, code, title = 400, "bad_request", "Bad request"


class MalformedJson(Problem):
    status, code, title = 400, "malformed_json", "Malformed JSON"


class InvalidValue(Problem):
    status, code, title = 400, "invalid_value", "Bad request"


class Unauthenticated(Problem):
    status, code, title = 401, "unauthenticated", "Authentication required"

    def __init__(self, detail: str = "Valid credentials are required", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="tenantry"'})
        super().__init__(detail, **kw)


class PaymentRequired(Problem):
    status, code, title = 402, "quota_exceeded", "Plan quota exceeded"


class Forbidden(Problem):
    status, code, title = 403, "forbidden", "Permission denied"

    def __init__(
        self, detail: str, *, org_id: str | None = None, team_id: str | None = None, **kw: Any
    ) -> None:
        super().__init__(detail, **kw)
        # Where the refusal happened, for the `denied` audit event (not part of the response).
        self.org_id = org_id
        self.team_id = team_id


class NotFound(Problem):
    status, code, title = 404, "not_found", "Not found"


class Conflict(Problem):
    status, code, title = 409, "conflict", "Conflict"


class MethodNotAllowed(Problem):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class PayloadTooLarge(Problem):
    status, code, title = 413, "payload_too_large", "Request body too large"


class UnsupportedMediaType(Problem):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class Gone(Problem):
    status, code, title = 410, "gone", "Gone"


class Unprocessable(Problem):
    status, code, title = 422, "validation_error", "Invalid request"


class TooManyRequests(Problem):
    status, code, title = 429, "rate_limited", "Too many requests"


class InternalError(Problem):
    status, code, title = 500, "internal_error", "Internal server error"


class ServiceUnavailable(Problem):
    status, code, title = 503, "database_unavailable", "Service unavailable"


def problem_for_status(status: int, detail: str, headers: dict[str, str] | None = None) -> Problem:
    """The problem of an HTTP error raised outside our code (Starlette's, FastAPI's), with the
    code of the class that has its status: every code the API sends has one status."""
    pending: list[type[Problem]] = [Problem]
    while pending:
        cls = pending.pop(0)
        if cls.status == status and cls is not Problem:
            return cls(detail, headers=headers)
        pending.extend(cls.__subclasses__())
    if 400 <= status < 500:
        problem: Problem = BadRequest(detail, headers=headers)
    else:
        problem = InternalError(detail, headers=headers)
    return problem
