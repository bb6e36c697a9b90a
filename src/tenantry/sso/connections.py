"""SSO connections of an org: adding one (OIDC or SAML, from a preset), changing it, its mapping
rules, the admin's test sign-in, enabling (only after a successful test of its current
settings) and disabling."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.sso import provisioning, repository, saml
from tenantry.sso.mapping import MappingRules
from tenantry.sso.models import AttemptPurpose, Protocol, SsoConnection
from tenantry.sso.presets import Preset, issuer_for
from tenantry.sso.signin import Runtime, Started, start
from tenantry.tenancy.models import Organization

# Settings whose change puts a connection back in test mode (what its test proved no longer
# holds); claim and attribute names, hosted domain and mapping do not.
PROTOCOL_SETTINGS = frozenset(
    {"issuer", "client_id", "scopes", "idp_entity_id", "idp_metadata_url", "tenant", "domain"}
)
METADATA_MAX_BYTES = 1024 * 1024


def _connection(session: Session, org: Organization, connection_id: str) -> SsoConnection:
    conn = repository.connection_in_org(session, org_id=org.id, connection_id=connection_id)
    if conn is None:
        raise NotFound("SSO connection not found")
    return conn


def list_connections(
    session: Session, principal: Principal, org: Organization
) -> list[SsoConnection]:
    authorize(session, principal, Permission.SSO_READ, org_id=org.id)
    return repository.connections_of(session, org_id=org.id)


def get_connection(
    session: Session, principal: Principal, org: Organization, connection_id: str
) -> SsoConnection:
    authorize(session, principal, Permission.SSO_READ, org_id=org.id)
    return _connection(session, org, connection_id)


def fetch_metadata(url: str) -> str:
    try:
        resp = requests.get(url, timeout=10)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise Unprocessable(
            f"Could not read the IdP metadata at {url}: {exc}", code="invalid_idp_metadata"
        ) from None
    if len(resp.content) > METADATA_MAX_BYTES:
        raise Unprocessable("The IdP metadata is too large", code="invalid_idp_metadata")
    return resp.text


def _settle_oidc(conn: SsoConnection, settings: dict[str, Any]) -> None:
    preset = Preset(conn.preset)
    issuer = settings.get("issuer") or issuer_for(
        preset, tenant=settings.get("tenant"), domain=settings.get("domain")
    )
    if not issuer:
        raise Unprocessable(
            "An OIDC connection needs an issuer (or the preset's tenant or domain)",
            code="missing_issuer",
        )
    if not settings.get("client_id"):
        raise Unprocessable("An OIDC connection needs a client_id", code="missing_client_id")
    if preset is Preset.GOOGLE_WORKSPACE and not settings.get("hosted_domain"):
        raise Unprocessable(
            "A Google Workspace connection needs hosted_domain (your Workspace domain): Google "
            "signs in every Google account",
            code="missing_hosted_domain",
        )
    settings["issuer"] = issuer


def _settle_saml(conn: SsoConnection, settings: dict[str, Any], metadata_xml: str | None) -> None:
    if metadata_xml is None and settings.get("idp_metadata_url"):
        metadata_xml = fetch_metadata(str(settings["idp_metadata_url"]))
    if metadata_xml is not None:
        conn.idp_metadata_xml = metadata_xml
    if not conn.idp_metadata_xml:
        raise Unprocessable(
            "A SAML connection needs the IdP's metadata (idp_metadata_xml or idp_metadata_url)",
            code="invalid_idp_metadata",
        )
    try:
        entities = saml.idp_entity_ids(conn.idp_metadata_xml)
    except saml.SamlError as exc:
        raise Unprocessable(exc.detail, code=exc.code) from None
    wanted = settings.get("idp_entity_id")
    if wanted and wanted not in entities:
        raise Unprocessable(
            f"The metadata describes no IdP {wanted!r}", code="invalid_idp_metadata"
        )
    if not wanted and len(entities) > 1:
        raise Unprocessable(
            "The metadata describes several IdPs; say which with idp_entity_id",
            code="invalid_idp_metadata",
        )
    settings["idp_entity_id"] = wanted or entities[0]


def create_connection(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    runtime: Runtime,
    *,
    name: str,
    protocol: Protocol,
    preset: Preset,
    settings: dict[str, Any],
    client_secret: str | None,
    idp_metadata_xml: str | None,
    jit_provisioning: bool,
) -> SsoConnection:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    now = ctx.clock.now()
    conn = SsoConnection(
        id=new_id("sso"),
        org_id=org.id,
        name=name,
        protocol=protocol.value,
        preset=preset.value,
        enabled=False,
        jit_provisioning=jit_provisioning,
        mapping=MappingRules().model_dump(),
        revision=1,
        created_by=principal.user_id,
        created_at=now,
        updated_at=now,
    )
    settled = dict(settings)
    if protocol is Protocol.OIDC:
        _settle_oidc(conn, settled)
        if not client_secret:
            raise Unprocessable(
                "An OIDC connection needs its client_secret", code="missing_client_secret"
            )
        conn.client_secret_sealed = runtime.box.seal(client_secret, bound_to=conn.id)
    else:
        _settle_saml(conn, settled, idp_metadata_xml)
    conn.settings = settled
    ctx.session.add(conn)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="sso_connection",
        target_id=conn.id,
        summary={"name": name, "protocol": protocol.value, "preset": preset.value},
    )
    return conn


def update_connection(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    runtime: Runtime,
    connection_id: str,
    *,
    changes: dict[str, Any],
) -> SsoConnection:
    """`changes` holds only what was sent: name, jit_provisioning, settings (merged; a null
    value removes a setting), client_secret, idp_metadata_xml."""
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    conn = _connection(ctx.session, org, connection_id)
    changed: list[str] = []
    retest = False
    if "name" in changes:
        conn.name = changes["name"]
        changed.append("name")
    if "jit_provisioning" in changes:
        conn.jit_provisioning = changes["jit_provisioning"]
        changed.append("jit_provisioning")
    settings = dict(conn.settings)
    for key, value in (changes.get("settings") or {}).items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
        changed.append(f"settings.{key}")
        retest = retest or key in PROTOCOL_SETTINGS
    if conn.protocol == Protocol.OIDC:
        if "issuer" in (changes.get("settings") or {}) and changes["settings"]["issuer"] is None:
            settings.pop("issuer", None)
        _settle_oidc(conn, settings)
        if changes.get("client_secret"):
            conn.client_secret_sealed = runtime.box.seal(changes["client_secret"], bound_to=conn.id)
            changed.append("client_secret")
            retest = True
    else:
        metadata = changes.get("idp_metadata_xml")
        if metadata is not None or "settings.idp_metadata_url" in changed:
            retest = True
            changed.append("idp_metadata")
        _settle_saml(conn, settings, metadata)
    conn.settings = settings
    if retest:
        conn.revision += 1
        if conn.enabled:
            _refuse_if_last_enforced(ctx.session, conn)
        conn.enabled = False
    conn.updated_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="sso_connection",
        target_id=conn.id,
        summary={"changed": sorted(set(changed)), "back_to_test_mode": retest},
    )
    return conn


def set_mapping(
    ctx: Ctx, principal: Principal, org: Organization, connection_id: str, rules: MappingRules
) -> SsoConnection:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    conn = _connection(ctx.session, org, connection_id)
    provisioning.check_rules(ctx, principal, org_id=org.id, rules=rules)
    before = MappingRules.of(conn.mapping)
    conn.mapping = rules.model_dump()
    conn.updated_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="sso_connection",
        target_id=conn.id,
        summary={
            "rules": {"before": len(before.rules), "after": len(rules.rules)},
            "default": rules.default.model_dump() if rules.default else None,
            "required_groups": len(rules.required_groups),
        },
    )
    return conn


def start_test(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    runtime: Runtime,
    connection_id: str,
    *,
    return_to: str | None,
) -> Started:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    conn = _connection(ctx.session, org, connection_id)
    started = start(
        ctx,
        runtime,
        conn,
        purpose=AttemptPurpose.TEST,
        return_to=return_to,
        started_by=principal.user_id,
    )
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="sso_connection",
        target_id=conn.id,
        summary={"attempt_id": started.attempt_id},
    )
    return started


def set_enabled(
    ctx: Ctx, principal: Principal, org: Organization, connection_id: str, *, enabled: bool
) -> SsoConnection:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    conn = _connection(ctx.session, org, connection_id)
    if enabled and conn.tested_revision != conn.revision:
        raise Conflict(
            "Run a successful test sign-in of this connection's current settings first",
            code="sso_test_required",
        )
    if not enabled and conn.enabled:
        _refuse_if_last_enforced(ctx.session, conn)
    before = conn.enabled
    conn.enabled = enabled
    conn.updated_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="sso_connection",
        target_id=conn.id,
        summary={"before": before, "after": enabled},
    )
    return conn


def delete_connection(
    ctx: Ctx, principal: Principal, org: Organization, connection_id: str
) -> None:
    authorize(ctx.session, principal, Permission.SSO_MANAGE, org_id=org.id)
    conn = _connection(ctx.session, org, connection_id)
    if conn.enabled:
        _refuse_if_last_enforced(ctx.session, conn)
    ctx.session.delete(conn)
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="sso_connection",
        target_id=conn.id,
        summary={"name": conn.name, "protocol": conn.protocol},
    )


def _refuse_if_last_enforced(session: Session, conn: SsoConnection) -> None:
    """While the org requires SSO, its last enabled connection stays: without it, nobody of
    its domains but the break-glass owners could sign in."""
    policy = repository.policy_of(session, org_id=conn.org_id)
    others = [
        c for c in repository.enabled_connections(session, org_id=conn.org_id) if c.id != conn.id
    ]
    if policy is not None and policy.enforced and not others:
        raise Conflict(
            "This is the last enabled connection and the organization requires SSO; stop "
            "requiring SSO first",
            code="sso_last_connection",
        )
