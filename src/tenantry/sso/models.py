"""Tables of enterprise sign-in. Every tenant-owned table leads with `org_id`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tenantry.kit.db import Base, JSONType, UTCDateTime


class Protocol(StrEnum):
    OIDC = "oidc"
    SAML = "saml"


class AttemptPurpose(StrEnum):
    SIGN_IN = "sign_in"
    TEST = "test"  # an admin's test sign-in: shows what arrived, creates no one
    LINK = "link"  # a signed-in person links their account to the identity provider


class SsoConnection(Base):
    """One identity provider an org signs its people in with. It starts disabled (test mode);
    enabling needs a successful test since the last change of its protocol settings."""

    __tablename__ = "sso_connections"
    __table_args__ = (Index("ix_sso_connections_org_id", "org_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    protocol: Mapped[str] = mapped_column(String(8))
    # google_workspace | entra_id | okta | auth0 | generic: fills in issuer and claim names.
    preset: Mapped[str] = mapped_column(String(32), default="generic")
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # OIDC: issuer, client_id, scopes, claim names, hosted_domain. SAML: idp_entity_id,
    # idp_metadata_url, attribute names, allow_idp_initiated. Never a secret.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # OIDC client secret, encrypted with a key derived from the server secret (`sso.secrets`).
    client_secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    # SAML: the IdP's metadata document (as uploaded or as last fetched from its URL).
    idp_metadata_xml: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Mapping rules (`sso.mapping.MappingRules`), as JSON.
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    jit_provisioning: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by every change of the protocol settings: a test counts for the revision it ran on.
    revision: Mapped[int] = mapped_column(default=1)
    tested_revision: Mapped[int | None] = mapped_column(nullable=True)
    last_test: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SsoAttempt(Base):
    """One trip to the identity provider and back: the `state`, `nonce` and PKCE verifier of an
    OIDC request or the ID of a SAML AuthnRequest. Consumed once; a replayed answer finds it
    consumed. After a sign-in it holds the hash of the one-time code the client exchanges for
    tokens, with the hash of the verifier that binds it to whoever started it."""

    __tablename__ = "sso_attempts"
    __table_args__ = (Index("ix_sso_attempts_org_id_created_at", "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("sso_connections.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))
    # OIDC `state` (hashed) or the SAML request ID (hashed): how the answer finds its attempt.
    lookup_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_verifier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    verifier_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    return_to: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # Who started it, for a test or a link (an admin, a signed-in person).
    started_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The signed-in person and the one-time code handed to the client, once the answer is good.
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    handoff_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    handoff_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SsoIdentity(Base):
    """A person's account at an identity provider, linked to their Tenantry account by
    (issuer, subject), never by email alone."""

    __tablename__ = "sso_identities"
    __table_args__ = (
        UniqueConstraint("issuer", "subject"),
        Index("ix_sso_identities_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # The org whose connection first linked it (the same IdP account may sign in to others).
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[str | None] = mapped_column(
        ForeignKey("sso_connections.id", ondelete="SET NULL"), nullable=True
    )
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(500))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SamlAssertionSeen(Base):
    """IDs of SAML assertions already accepted, kept until they expire: a replayed assertion
    (IdP-initiated ones have no request to consume) is refused."""

    __tablename__ = "sso_saml_assertions"
    __table_args__ = (UniqueConstraint("connection_id", "assertion_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(ForeignKey("sso_connections.id", ondelete="CASCADE"))
    assertion_id: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class DomainStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"


class VerifiedDomain(Base):
    """An email domain an org claims; verified once a DNS TXT record proves it. A domain is
    verified by one org at most."""

    __tablename__ = "sso_domains"
    __table_args__ = (
        UniqueConstraint("org_id", "domain"),
        Index("ix_sso_domains_domain", "domain"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(253))
    status: Mapped[str] = mapped_column(String(16), default=DomainStatus.PENDING.value)
    # The value the TXT record must carry (not a secret: it is published in DNS).
    token: Mapped[str] = mapped_column(String(64))
    # Set while verified; unique, so a second org cannot verify the same domain.
    verified_domain: Mapped[str | None] = mapped_column(String(253), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SsoPolicy(Base):
    """Whether the org requires SSO for the people of its verified domains, and the owners who
    may still sign in with a password (break-glass)."""

    __tablename__ = "sso_policies"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    enforced: Mapped[bool] = mapped_column(Boolean, default=False)
    break_glass_user_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
