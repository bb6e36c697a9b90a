"""Access tokens: a signature verified once per process, while times are judged on every use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tenantry.kit.security import AccessTokens, TokenError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _tokens() -> AccessTokens:
    return AccessTokens("s" * 40, audience="tenantry", issuer="tenantry", ttl=timedelta(minutes=15))


def test_a_token_verified_once_still_expires_on_time() -> None:
    tokens = _tokens()
    token, _ = tokens.issue(user_id="usr_1", session_id="ses_1", now=NOW)
    assert tokens.verify(token, now=NOW).session_id == "ses_1"
    assert tokens.verify(token, now=NOW + timedelta(minutes=14)).user_id == "usr_1"
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token, now=NOW + timedelta(minutes=15))


def test_a_token_is_not_valid_before_it_was_issued() -> None:
    tokens = _tokens()
    token, _ = tokens.issue(user_id="usr_1", session_id="ses_1", now=NOW)
    tokens.verify(token, now=NOW)
    with pytest.raises(TokenError, match="not yet valid"):
        tokens.verify(token, now=NOW - timedelta(minutes=1))


def test_a_tampered_token_is_refused_even_after_the_genuine_one_was_seen() -> None:
    tokens = _tokens()
    token, _ = tokens.issue(user_id="usr_1", session_id="ses_1", now=NOW)
    tokens.verify(token, now=NOW)
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(TokenError):
        tokens.verify(forged, now=NOW)


def test_another_servers_token_is_refused() -> None:
    token, _ = _tokens().issue(user_id="usr_1", session_id="ses_1", now=NOW)
    other = AccessTokens(
        "t" * 40, audience="tenantry", issuer="tenantry", ttl=timedelta(minutes=15)
    )
    with pytest.raises(TokenError):
        other.verify(token, now=NOW)
