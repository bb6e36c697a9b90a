"""Payment methods: an org's cards and bank accounts at the payment provider; open invoices are
collected from the default one."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.billing import repository
from tenantry.billing.accounts import customer_of
from tenantry.billing.models import PaymentMethod
from tenantry.billing.providers import CardDetails, PaymentProvider
from tenantry.kit.context import Ctx
from tenantry.kit.errors import NotFound
from tenantry.kit.ids import new_id
from tenantry.tenancy.models import Organization


def default_method(session: Session, org_id: str) -> PaymentMethod | None:
    methods = repository.payment_methods(session, org_id=org_id)
    return next((m for m in methods if m.is_default), None)


def add_payment_method(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    token: str,
    offered: CardDetails,
    make_default: bool,
    provider: PaymentProvider,
) -> PaymentMethod:
    customer = customer_of(ctx, org, provider)
    details = provider.describe_payment_method(customer_id=customer, token=token, offered=offered)
    existing = repository.payment_methods(ctx.session, org_id=org.id)
    make_default = make_default or not any(m.is_default for m in existing)
    if make_default:
        for m in existing:
            m.is_default = False
    method = PaymentMethod(
        id=new_id("pm"),
        org_id=org.id,
        kind=details.kind,
        brand=details.brand,
        last4=details.last4,
        exp_month=details.exp_month,
        exp_year=details.exp_year,
        bank_name=details.bank_name,
        provider=provider.name,
        provider_token=token,
        is_default=make_default,
        created_at=ctx.clock.now(),
    )
    ctx.session.add(method)
    ctx.session.flush()
    if make_default:
        # Open invoices issued while the org had no way to pay are collected from now on.
        repository.schedule_uncollected(ctx.session, org_id=org.id, now=ctx.clock.now())
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="payment_method",
        target_id=method.id,
        summary={
            "kind": method.kind,
            "brand": method.brand,
            "last4": method.last4,
            "default": make_default,
        },
    )
    return method


def payment_methods_of(session: Session, org_id: str) -> list[PaymentMethod]:
    return repository.payment_methods(session, org_id=org_id)


def remove_payment_method(
    ctx: Ctx, principal: Principal, org: Organization, method_id: str
) -> None:
    method = repository.payment_method(ctx.session, org_id=org.id, method_id=method_id)
    if method is None:
        raise NotFound("Payment method not found")
    method.removed_at, method.is_default = ctx.clock.now(), False
    audit.record(ctx, principal, org_id=org.id, target_type="payment_method", target_id=method.id)


def resolve_method(session: Session, org_id: str, method_id: str | None) -> PaymentMethod | None:
    if method_id is None:
        return default_method(session, org_id)
    found = repository.payment_method(session, org_id=org_id, method_id=method_id)
    if found is None:
        raise NotFound("Payment method not found")
    return found
