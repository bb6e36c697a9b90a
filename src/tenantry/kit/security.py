"""Security helpers: argon2id password hashes, secret tokens stored as hashes, signed access JWTs.

JWTs are signed with Ed25519 (EdDSA) from a key derived from the server secret, so every replica
with the same secret verifies every other's tokens, and the verifier accepts exactly one algorithm:
`alg: none`, HS256-with-the-public-key and every other algorithm confusion are refused.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

JWT_ALGORITHM = "EdDSA"


def derive_key(secret: str, purpose: str, length: int = 32) -> bytes:
    """A key for one purpose derived from the server secret (HKDF-SHA256)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=b"tenantry", info=purpose.encode()
    ).derive(secret.encode())


def signing_key(secret: str, purpose: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(derive_key(secret, purpose))


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def new_secret(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits, so a fast hash suffices; a slow one would only add latency."""
    return hashlib.sha256(token.encode()).hexdigest()


class Passwords:
    def __init__(self, *, time_cost: int, memory_cost_kib: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=1
        )
        # Verifying against this when the account does not exist keeps timing the same.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    expires_at: datetime


# Access tokens whose signature this process has checked (a few MB at most; the oldest go first).
VERIFIED_TOKENS_KEPT: Final = 10_000


class TokenError(Exception):
    pass


class AccessTokens:
    def __init__(self, secret: str, *, audience: str, issuer: str, ttl: timedelta) -> None:
        self._private = signing_key(secret, "jwt-access")
        self._public = self._private.public_key()
        self.audience = audience
        self.issuer = issuer
        self.ttl = ttl
        self._verified: OrderedDict[str, tuple[float, float, AccessClaims]] = OrderedDict()
        self._verified_lock = threading.Lock()

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def issue(self, *, user_id: str, session_id: str, now: datetime) -> tuple[str, datetime]:
        expires = now + self.ttl
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": secrets.token_hex(8),
            "typ": "access",
        }
        return jwt.encode(claims, self._private, algorithm=JWT_ALGORITHM), expires

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        """The token's claims if its signature, audience, issuer and times are good. A token's
        signature is checked once per process (`_verified`): the same token arrives with every
        request of a session, and an Ed25519 verification costs more than the rest of
        authentication. The times are judged against `now` on every call."""
        found = self._verified.get(token)
        if found is None:
            found = self._verify_signed(token)
            with self._verified_lock:
                self._verified[token] = found
                while len(self._verified) > VERIFIED_TOKENS_KEPT:
                    self._verified.popitem(last=False)
        exp, nbf, claims = found
        # Time checks against our Clock, not the wall clock, so tests can move time.
        stamp = now.timestamp()
        if exp <= stamp:
            raise TokenError("token expired")
        if nbf > stamp + 5:
            raise TokenError("token not yet valid")
        return replace(claims, expires_at=datetime.fromtimestamp(exp, tz=now.tzinfo))

    def _verify_signed(self, token: str) -> tuple[float, float, AccessClaims]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != JWT_ALGORITHM:
                raise TokenError("unexpected token algorithm")
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[JWT_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["exp", "nbf", "iat", "sub", "sid", "aud", "iss"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    # PyJWT would judge `iat` by the wall clock; all time checks use our Clock.
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        # Only the signer can write these, but a malformed claim must still be a 401, not a crash.
        numbers = (claims["exp"], claims["nbf"])
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in numbers):
            raise TokenError("malformed time claims")
        if not isinstance(claims["sid"], str):
            raise TokenError("malformed session claim")
        if claims.get("typ") != "access":
            raise TokenError("not an access token")
        expires_at = datetime.fromtimestamp(claims["exp"], tz=UTC)
        return (
            float(claims["exp"]),
            float(claims["nbf"]),
            AccessClaims(user_id=claims["sub"], session_id=claims["sid"], expires_at=expires_at),
        )
