"""One attempt to deliver a message: signed per the Standard Webhooks specification (by its
`standardwebhooks` library), sent to the address the SSRF guard checked, its answer kept (status,
the first bytes of the body, how long it took). Redirects are not followed: a receiver could
point one at an address the guard refuses."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import httpx
from standardwebhooks import Webhook

from tenantry import __version__
from tenantry.webhooks import guard

SNIPPET_BYTES = 1024
USER_AGENT = f"Tenantry-Webhooks/{__version__}"


@dataclass(frozen=True)
class Job:
    """A claimed delivery, with what sending it needs."""

    delivery_id: str
    org_id: str
    endpoint_id: str
    url: str
    secret: str
    message_id: str
    body: str
    attempts: int  # made before this one


@dataclass(frozen=True)
class Outcome:
    delivery_id: str
    at: datetime
    duration_ms: int
    status_code: int | None = None
    response: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(secret: str, *, message_id: str, body: str, at: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers; the timestamp is the attempt's own."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body.encode()),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def attempt(
    client: httpx.Client, job: Job, *, at: datetime, allow_private: bool, timeout: float
) -> Outcome:
    started = time.perf_counter()

    def outcome(
        *, status_code: int | None = None, response: str | None = None, error: str | None = None
    ) -> Outcome:
        duration = int((time.perf_counter() - started) * 1000)
        return Outcome(job.delivery_id, at, duration, status_code, response, error)

    try:
        target = guard.target_of(job.url, allow_private=allow_private)
    except guard.RefusedUrl as exc:
        return outcome(error=f"refused: {exc}"[:500])
    headers = signed_headers(job.secret, message_id=job.message_id, body=job.body, at=at)
    extensions: dict[str, str] = {}
    if target.host is not None:  # pinned to the checked address: name the host for HTTP and TLS
        headers["host"] = target.host_header or target.host
        extensions["sni_hostname"] = target.host
    try:
        with client.stream(
            "POST",
            target.url,
            content=job.body.encode(),
            headers=headers,
            timeout=timeout,
            extensions=extensions,
            follow_redirects=False,
        ) as response:
            snippet = b""
            for chunk in response.iter_bytes():
                snippet += chunk
                if len(snippet) >= SNIPPET_BYTES:
                    break
            return outcome(
                status_code=response.status_code,
                # PostgreSQL's text holds no NUL character.
                response=snippet[:SNIPPET_BYTES]
                .decode("utf-8", errors="replace")
                .replace("\x00", "\ufffd"),
            )
    except httpx.HTTPError as exc:
        return outcome(error=f"{type(exc).__name__}: {exc}"[:500].replace("\x00", ""))
