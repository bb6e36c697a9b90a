"""The relying party's side of OpenID Connect, by Authlib: discovery, the authorization request
(code flow with PKCE S256, `state` and `nonce`), the code's redemption, and the ID token checked
against the provider's keys (signature, issuer, audience, times, nonce, `at_hash`); userinfo
fills in claims the ID token left out.

Provider metadata and keys are kept per issuer for an hour; a token signed with a key id not
in the kept set fetches the keys once more (the provider rotated them).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

HTTP_TIMEOUT_SECONDS: Final = 10.0
METADATA_TTL_SECONDS: Final = 3600.0
# Asymmetric algorithms only: an HS256 token "signed" with the client secret, or `none`, is
# refused whatever the provider advertises.
ALLOWED_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                             "ES384", "ES512", "EdDSA")  # fmt: skip


class OidcError(Exception):
    """The provider's answer is refused; `code` names why (problem+json `code`)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class OidcClient:
    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    redirect_uri: str


class ProviderDirectory:
    """Metadata and signing keys of the providers this process talks to, fetched on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metadata: dict[str, tuple[float, dict[str, Any]]] = {}
        self._keys: dict[str, tuple[float, dict[str, Any]]] = {}

    def metadata(self, issuer: str) -> dict[str, Any]:
        with self._lock:
            kept = self._metadata.get(issuer)
        if kept is not None and time.monotonic() - kept[0] < METADATA_TTL_SECONDS:
            return kept[1]
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        found = _get_json(url, what="discovery document")
        # OpenID Connect Discovery 1.0, 4.3: the document's issuer is exactly the one asked for.
        if found.get("issuer") != issuer:
            raise OidcError(
                "sso_discovery_failed",
                f"The discovery document names the issuer {found.get('issuer')!r}, not {issuer!r}",
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(found.get(name), str):
                raise OidcError("sso_discovery_failed", f"The discovery document has no {name}")
        with self._lock:
            self._metadata[issuer] = (time.monotonic(), found)
        return found

    def keys(self, issuer: str, *, refresh: bool = False) -> KeySet:
        with self._lock:
            kept = self._keys.get(issuer)
        if refresh or kept is None or time.monotonic() - kept[0] >= METADATA_TTL_SECONDS:
            data = _get_json(self.metadata(issuer)["jwks_uri"], what="key set")
            with self._lock:
                self._keys[issuer] = kept = (time.monotonic(), data)
        try:
            return KeySet.import_key_set(kept[1])  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise OidcError(
                "sso_discovery_failed", f"The provider's key set is unusable: {exc}"
            ) from None

    def forget(self, issuer: str) -> None:
        with self._lock:
            self._metadata.pop(issuer, None)
            self._keys.pop(issuer, None)


def _get_json(url: str, *, what: str) -> dict[str, Any]:
    try:
        resp = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)
        resp.raise_for_status()
        found = resp.json()
    except (requests.RequestException, ValueError) as exc:
        raise OidcError(
            "sso_discovery_failed", f"Could not read the {what} at {url}: {exc}"
        ) from None
    if not isinstance(found, dict):
        raise OidcError("sso_discovery_failed", f"The {what} at {url} is not a JSON object")
    return found


def _session(client: OidcClient) -> OAuth2Session:
    return OAuth2Session(
        client_id=client.client_id,
        client_secret=client.client_secret,
        scope=" ".join(client.scopes),
        redirect_uri=client.redirect_uri,
        code_challenge_method="S256",
    )


def authorization_url(
    directory: ProviderDirectory,
    client: OidcClient,
    *,
    state: str,
    nonce: str,
    code_verifier: str,
    login_hint: str | None = None,
) -> str:
    endpoint = directory.metadata(client.issuer)["authorization_endpoint"]
    extra = {"login_hint": login_hint} if login_hint else {}
    with _session(client) as session:
        url, _ = session.create_authorization_url(
            endpoint, state=state, nonce=nonce, code_verifier=code_verifier, **extra
        )
    return str(url)


def redeem(
    directory: ProviderDirectory,
    client: OidcClient,
    *,
    code: str,
    code_verifier: str,
    nonce: str,
    now: datetime,
    leeway_seconds: int,
) -> dict[str, Any]:
    """The person's claims, from a validated ID token and (for what it lacks) userinfo."""
    metadata = directory.metadata(client.issuer)
    with _session(client) as session:
        try:
            token = session.fetch_token(
                metadata["token_endpoint"],
                code=code,
                code_verifier=code_verifier,
                timeout=HTTP_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # authlib's OAuth errors, requests' transport errors
            raise OidcError(
                "sso_code_refused", f"The provider refused the authorization code: {exc}"
            ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("sso_invalid_id_token", "The provider sent no ID token")
        claims = validate_id_token(
            directory,
            client,
            id_token,
            access_token=token.get("access_token"),
            nonce=nonce,
            now=now,
            leeway_seconds=leeway_seconds,
        )
        userinfo_url = metadata.get("userinfo_endpoint")
        if isinstance(userinfo_url, str) and token.get("access_token") and "email" not in claims:
            claims = {**_userinfo(session, userinfo_url, subject=claims["sub"]), **claims}
    return claims


def _userinfo(session: OAuth2Session, url: str, *, subject: str) -> dict[str, Any]:
    try:
        resp = session.get(url, timeout=HTTP_TIMEOUT_SECONDS)
        resp.raise_for_status()
        info = resp.json()
    except (requests.RequestException, ValueError) as exc:
        raise OidcError("sso_userinfo_failed", f"Could not read userinfo: {exc}") from None
    # OpenID Connect Core 5.3.2: userinfo about anyone else is not used.
    if not isinstance(info, dict) or info.get("sub") != subject:
        raise OidcError("sso_userinfo_failed", "Userinfo is about another subject")
    return info


def validate_id_token(
    directory: ProviderDirectory,
    client: OidcClient,
    id_token: str,
    *,
    access_token: str | None,
    nonce: str,
    now: datetime,
    leeway_seconds: int,
) -> dict[str, Any]:
    metadata = directory.metadata(client.issuer)
    advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in advertised if a in ALLOWED_ALGORITHMS]
    registry = JWSRegistry(algorithms=algorithms)
    try:
        try:
            decoded = jwt.decode(id_token, directory.keys(client.issuer), registry=registry)
        except InvalidKeyIdError:
            keys = directory.keys(client.issuer, refresh=True)
            decoded = jwt.decode(id_token, keys, registry=registry)
    except JoseError as exc:
        raise OidcError(
            "sso_invalid_id_token", f"The ID token's signature does not verify: {exc}"
        ) from None
    params: dict[str, Any] = {"nonce": nonce, "client_id": client.client_id}
    if access_token:
        params["access_token"] = access_token
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": client.issuer},
        "aud": {"essential": True, "value": client.client_id},
    }
    claims = CodeIDToken(decoded.claims, decoded.header, options, params)
    try:
        claims.validate(now=int(now.timestamp()), leeway=leeway_seconds)
    except JoseError as exc:
        raise OidcError("sso_invalid_id_token", f"The ID token is not valid: {exc}") from None
    return dict(claims)
