"""SCIM tokens and the org's provisioning rules: what an org's admins manage on Tenantry's own
API. A token is shown once, kept as a hash, listed with its last use, and revoked at will; it
names its org, so a directory's requests carry nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Forbidden, NotFound, Unauthenticated
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.kit.security import new_secret, token_hash
from tenantry.scim import repository
from tenantry.scim.models import ScimSettings, ScimToken
from tenantry.sso import provisioning
from tenantry.sso.mapping import MappingRules
from tenantry.tenancy.models import Organization
from tenantry.tenancy.scope import check_active

TOKEN_PREFIX = "scim_"
# A token's last use is written at most this often: a sync of thousands of people is as many
# requests, and one write per request would serialise them on SQLite for nothing.
TOUCH_INTERVAL_SECONDS = 60


@dataclass(frozen=True)
class IssuedToken:
    token: ScimToken
    secret: str


@dataclass(frozen=True)
class Directory:
    """Who a SCIM request comes from: the org's directory, by one of its tokens."""

    org_id: str
    token_id: str

    @property
    def actor(self) -> tuple[str, str]:
        return ("scim", self.token_id)


def create_token(ctx: Ctx, principal: Principal, org: Organization, *, name: str) -> IssuedToken:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    if principal.kind == "api_key":
        raise Forbidden(
            "API keys cannot create SCIM tokens; sign in as a user", code="api_key_cannot_mint"
        )
    secret = new_secret(TOKEN_PREFIX)
    token = ScimToken(
        id=new_id("sct"),
        org_id=org.id,
        name=name,
        display_prefix=secret[:12],
        secret_hash=token_hash(secret),
        created_by=principal.user_id,
        created_at=ctx.clock.now(),
    )
    ctx.session.add(token)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="scim_token",
        target_id=token.id,
        summary={"name": name},
    )
    return IssuedToken(token=token, secret=secret)


def list_tokens(
    session: Session, principal: Principal, org: Organization, page: PageRequest
) -> Page[ScimToken]:
    authorize(session, principal, Permission.SSO_READ, org_id=org.id)
    return repository.tokens_of(session, org_id=org.id, page=page)


def revoke_token(ctx: Ctx, principal: Principal, org: Organization, token_id: str) -> ScimToken:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    token = repository.token_in_org(ctx.session, org_id=org.id, token_id=token_id)
    if token is None:
        raise NotFound("SCIM token not found")
    if token.revoked_at is None:
        token.revoked_at = ctx.clock.now()
    audit.record(ctx, principal, org_id=org.id, target_type="scim_token", target_id=token.id)
    return token


def read_mapping(session: Session, principal: Principal, org: Organization) -> MappingRules:
    authorize(session, principal, Permission.SSO_READ, org_id=org.id)
    return mapping_of(session, org_id=org.id)


def mapping_of(session: Session, *, org_id: str) -> MappingRules:
    """The org's rules; without any, everyone provisioned is a member and joins no team."""
    found = repository.settings_of(session, org_id=org_id)
    return MappingRules.of(found.mapping if found else None)


def set_mapping(
    ctx: Ctx, principal: Principal, org: Organization, rules: MappingRules
) -> MappingRules:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    provisioning.check_rules(ctx, principal, org_id=org.id, rules=rules)
    found = repository.settings_of(ctx.session, org_id=org.id)
    before = MappingRules.of(found.mapping if found else None)
    if found is None:
        found = ScimSettings(org_id=org.id, mapping={}, updated_at=ctx.clock.now())
        ctx.session.add(found)
    found.mapping = rules.model_dump()
    found.updated_at = ctx.clock.now()
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="organization",
        target_id=org.id,
        summary={
            "rules": {"before": len(before.rules), "after": len(rules.rules)},
            "default": rules.default.model_dump() if rules.default else None,
            "required_groups": len(rules.required_groups),
        },
    )
    return rules


def authenticate(ctx: Ctx, secret: str) -> Directory:
    """The directory presenting `secret` (401 for an unknown or revoked token; 403 while an
    operator has suspended the org)."""
    token = (
        repository.unscoped_token_by_hash(ctx.session, token_hash(secret))
        if secret.startswith(TOKEN_PREFIX)
        else None
    )
    if token is None or token.revoked_at is not None:
        raise Unauthenticated("The SCIM token is not valid", code="invalid_scim_token")
    check_active(ctx.session, token.org_id)
    now = ctx.clock.now()
    last = token.last_used_at
    if last is None or (now - last).total_seconds() >= TOUCH_INTERVAL_SECONDS:
        repository.touch_token(ctx.session, token_id=token.id, now=now)
    return Directory(org_id=token.org_id, token_id=token.id)
