"""SDK calls of identity (mixed into `tenantry.client.api.Api`): sign-up and sign-in, the
signed-in person (`me`, sessions, password) and API keys."""

from __future__ import annotations

from datetime import datetime

from tenantry.client._calls import (
    API,
    Call,
    endpoint,
    fields,
    iso,
    model,
    nothing,
    page_query,
    paged,
    segment,
)
from tenantry.client.models import (
    ApiKey,
    ApiKeyCreated,
    BackupCodes,
    Me,
    MfaEnrolment,
    MfaStatus,
    MfaTokens,
    Page,
    Session,
    Tokens,
    User,
)


class IdentityCalls:
    token: str | None
    refresh_token: str | None

    def _refresh_call(self) -> Call[Tokens]:
        return Call(
            "POST",
            f"{API}/auth/refresh",
            model(Tokens),
            body={"refresh_token": self.refresh_token},
            auth=False,
            session="adopt",
        )

    # ---- auth ----

    @endpoint
    def signup(
        self,
        email: str,
        password: str,
        *,
        username: str | None = None,
        full_name: str | None = None,
    ) -> Call[Tokens]:
        """Create an account; the client is signed in as it afterwards."""
        body = fields(email=email, password=password, username=username, full_name=full_name)
        return Call(
            "POST", f"{API}/auth/signup", model(Tokens), body=body, auth=False, session="adopt"
        )

    @endpoint
    def login(self, email: str, password: str) -> Call[Tokens]:
        """Sign in; the client uses the new access and refresh tokens afterwards. Raises
        `MfaRequired` for someone with a second factor: finish with `complete_mfa`."""
        body = {"email": email, "password": password}
        return Call(
            "POST", f"{API}/auth/login", model(Tokens), body=body, auth=False, session="adopt"
        )

    @endpoint
    def complete_mfa(self, mfa_token: str, code: str) -> Call[MfaTokens]:
        """The second step of a sign-in: a code of the authenticator app (or a backup code);
        the client is signed in afterwards."""
        body = {"mfa_token": mfa_token, "code": code}
        return Call(
            "POST", f"{API}/auth/mfa", model(MfaTokens), body=body, auth=False, session="adopt"
        )

    @endpoint
    def start_mfa_enrolment_for_sign_in(self, mfa_token: str) -> Call[MfaEnrolment]:
        """For a sign-in an org's policy holds until the person has a second factor: a TOTP
        seed; its first code, sent to `complete_mfa`, finishes both."""
        return Call(
            "POST",
            f"{API}/auth/mfa/enrolment",
            model(MfaEnrolment),
            body={"mfa_token": mfa_token},
            auth=False,
        )

    @endpoint
    def refresh(self) -> Call[Tokens]:
        """Trade the refresh token for new tokens (done automatically on an expired token)."""
        return self._refresh_call()

    @endpoint
    def logout(self) -> Call[None]:
        """End this session on the server and forget the tokens."""
        return Call("POST", f"{API}/auth/logout", nothing, session="forget")

    # ---- me ----

    @endpoint
    def me(self) -> Call[Me]:
        """Who the credentials belong to, with their organizations and teams."""
        return Call("GET", f"{API}/me", model(Me))

    @endpoint
    def update_me(self, *, full_name: str | None = None, username: str | None = None) -> Call[User]:
        body = fields(full_name=full_name, username=username)
        return Call("PATCH", f"{API}/me", model(User), body=body)

    @endpoint
    def change_password(self, current_password: str, new_password: str) -> Call[None]:
        """Change the password; every other session of the account is signed out."""
        body = {"current_password": current_password, "new_password": new_password}
        return Call("POST", f"{API}/me/password", nothing, body=body)

    @endpoint
    def list_sessions(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[Session]]:
        return Call(
            "GET", f"{API}/me/sessions", model(Page[Session]), params=page_query(limit, cursor)
        )

    iter_sessions = paged(list_sessions)

    @endpoint
    def revoke_session(self, session_id: str) -> Call[None]:
        return Call("DELETE", f"{API}/me/sessions/{segment(session_id)}", nothing)

    # ---- the second factor ----

    @endpoint
    def mfa_status(self) -> Call[MfaStatus]:
        return Call("GET", f"{API}/me/mfa", model(MfaStatus))

    @endpoint
    def start_mfa(self) -> Call[MfaEnrolment]:
        """A new TOTP seed, its otpauth:// URI and QR code; `confirm_mfa` turns it on."""
        return Call("POST", f"{API}/me/mfa", model(MfaEnrolment))

    @endpoint
    def confirm_mfa(self, code: str) -> Call[BackupCodes]:
        """Turns two-factor sign-in on with a first code; the ten backup codes, shown once."""
        return Call("POST", f"{API}/me/mfa/confirm", model(BackupCodes), body={"code": code})

    @endpoint
    def disable_mfa(self, code: str) -> Call[None]:
        return Call("POST", f"{API}/me/mfa/disable", nothing, body={"code": code})

    @endpoint
    def regenerate_backup_codes(self, code: str) -> Call[BackupCodes]:
        """Ten new backup codes; the old ones stop working."""
        return Call("POST", f"{API}/me/mfa/backup-codes", model(BackupCodes), body={"code": code})

    # ---- API keys ----

    @endpoint
    def create_api_key(
        self,
        org: str,
        *,
        name: str,
        team_id: str | None = None,
        permissions: list[str] | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Call[ApiKeyCreated]:
        """Create an API key; its `secret` is in this answer only."""
        body = fields(
            name=name, team_id=team_id, permissions=permissions, expires_at=iso(expires_at)
        )
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/api-keys",
            model(ApiKeyCreated),
            body=body,
            idempotency_key=idempotency_key,
        )

    @endpoint
    def list_api_keys(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[ApiKey]]:
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/api-keys",
            model(Page[ApiKey]),
            params=page_query(limit, cursor),
        )

    iter_api_keys = paged(list_api_keys)

    @endpoint
    def revoke_api_key(self, key_id: str) -> Call[ApiKey]:
        """Revoke an API key; it stops working on the very next request."""
        return Call("DELETE", f"{API}/api-keys/{segment(key_id)}", model(ApiKey))
