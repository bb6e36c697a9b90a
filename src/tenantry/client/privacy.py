"""SDK calls of privacy (mixed into `tenantry.client.api.Api`): personal data export and
erasure."""

from __future__ import annotations

from typing import Any

from tenantry.client._calls import (
    API,
    Call,
    endpoint,
    json_object,
    nothing,
    segment,
)


class PrivacyCalls:
    # ---- personal data ----

    @endpoint
    def export_my_data(self) -> Call[dict[str, Any]]:
        """Everything the server holds about this account, as one JSON document (with an API
        key: only what its organization holds)."""
        return Call("GET", f"{API}/users/me/export", json_object)

    @endpoint
    def export_member_data(self, org: str, user: str) -> Call[dict[str, Any]]:
        """What an organization holds about one of its members (needs audit:read)."""
        return Call("GET", f"{API}/orgs/{segment(org)}/members/{segment(user)}/export", json_object)

    @endpoint
    def erase_account(self, user_id: str, *, confirm: str) -> Call[None]:
        """Erase this account and its personal data for good; `confirm` must be its email.
        Only a signed-in user can erase itself; the client forgets its tokens afterwards."""
        return Call(
            "DELETE",
            f"{API}/users/{segment(user_id)}",
            nothing,
            body={"confirm": confirm},
            session="forget",
        )
