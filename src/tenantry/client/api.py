"""Every route of the Tenantry API, written once for both `Client` and `AsyncClient`: one mixin
of calls per domain (`identity`, `tenancy`, `access`, `audit`, `metering`, `throttling`,
`billing`, `privacy`, `operator`, `sso`), and here the request handling they share.

Methods here only describe requests (see `tenantry.client._calls`). Conventions:
- `org` is an organization's id or slug; `team` is a team's id; `user` is a user's id or email.
- `list_*` return one `Page`; `iter_*` walk every page. `limit` caps a page (server max 200).
- Optional arguments left as None are not sent, so an update changes only what it names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from tenantry import __version__
from tenantry.client._calls import (
    Call,
    endpoint,
    model,
    text,
)
from tenantry.client.access import AccessCalls
from tenantry.client.audit import AuditCalls
from tenantry.client.billing import BillingCalls
from tenantry.client.compliance import ComplianceCalls
from tenantry.client.errors import MfaRequired, error_from_response
from tenantry.client.governance import GovernanceCalls
from tenantry.client.identity import IdentityCalls
from tenantry.client.metering import MeteringCalls
from tenantry.client.ml import MlCalls
from tenantry.client.models import (
    Health,
    MfaStep,
    Readiness,
    Tokens,
)
from tenantry.client.operator import OperatorCalls
from tenantry.client.privacy import PrivacyCalls
from tenantry.client.scim import ScimCalls
from tenantry.client.spend import SpendCalls
from tenantry.client.sso import SsoCalls
from tenantry.client.tenancy import TenancyCalls
from tenantry.client.throttling import ThrottlingCalls
from tenantry.client.webhooks import WebhookCalls

T = TypeVar("T")
TokensCallback = Callable[[Tokens], None]


class Api(
    IdentityCalls,
    TenancyCalls,
    AccessCalls,
    AuditCalls,
    MeteringCalls,
    SpendCalls,
    GovernanceCalls,
    ComplianceCalls,
    ThrottlingCalls,
    BillingCalls,
    PrivacyCalls,
    OperatorCalls,
    SsoCalls,
    ScimCalls,
    MlCalls,
    WebhookCalls,
):
    """State and request handling shared by the sync and async clients."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        on_tokens: TokensCallback | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.refresh_token = refresh_token
        # Called with the new tokens after login, signup or an automatic refresh, so a caller
        # (the CLI) can persist them; a rotated refresh token is useless once replaced.
        self.on_tokens = on_tokens

    # ---- request handling shared by both transports ----

    def _request_args(self, call: Call[Any]) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": f"tenantry-python/{__version__}"}
        if call.auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if call.idempotency_key:
            headers["Idempotency-Key"] = call.idempotency_key
        args: dict[str, Any] = {
            "method": call.method,
            "url": self.base_url + call.path,
            "params": call.params or None,
            "headers": headers,
        }
        if call.body is not None:
            args["json"] = call.body
        elif call.content is not None:
            args["content"] = call.content
            headers["Content-Type"] = "application/octet-stream"
        return args

    def _may_refresh(self, call: Call[Any], response: httpx.Response) -> bool:
        """A 401 on an authenticated call is worth one refresh when we hold a refresh token."""
        return response.status_code == 401 and call.auth and self.refresh_token is not None

    def _token_was_replaced(self, response: httpx.Response) -> bool:
        """Another thread or task refreshed while this request was in flight: retry with the
        new token rather than spend the refresh token twice (reuse would end the session)."""
        sent = response.request.headers.get("authorization", "")
        return bool(self.token) and sent != f"Bearer {self.token}"

    def _finish(self, call: Call[T], response: httpx.Response) -> T:
        if response.is_error:
            raise error_from_response(response)
        if call.session == "adopt" and b'"mfa_required"' in response.content:
            # A right password of someone with a second factor: no session until a code.
            raise MfaRequired(MfaStep.model_validate(response.json()))
        result = call.parse(response)
        if call.session == "adopt" and isinstance(result, Tokens):
            self.token, self.refresh_token = result.access_token, result.refresh_token
            if self.on_tokens is not None:
                self.on_tokens(result)
        elif call.session == "forget":
            self.token = self.refresh_token = None
        return result

    # ---- operations ----

    @endpoint
    def healthz(self) -> Call[Health]:
        return Call("GET", "/healthz", model(Health), auth=False)

    @endpoint
    def readyz(self) -> Call[Readiness]:
        """Raises ServerError (503) when the server cannot reach its database."""
        return Call("GET", "/readyz", model(Readiness), auth=False)

    @endpoint
    def metrics(self) -> Call[str]:
        """The Prometheus exposition text."""
        return Call("GET", "/metrics", text, auth=False)
