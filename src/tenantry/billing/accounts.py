"""An org's billing account: its currency, its tax rate, and who it is at the payment provider
(the customer)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.billing import repository
from tenantry.billing.models import BillingAccount
from tenantry.billing.providers import PaymentProvider
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Unprocessable
from tenantry.tenancy.models import Organization


def account_of(session: Session, org_id: str) -> BillingAccount:
    """The org's billing account; an org that never had one reads as the defaults."""
    found = repository.account(session, org_id=org_id)
    if found is not None:
        return found
    return BillingAccount(org_id=org_id, tax_rate=Decimal(0), currency="usd", provider="local")


def _account_for_write(ctx: Ctx, org_id: str, provider: PaymentProvider) -> BillingAccount:
    found = repository.account(ctx.session, org_id=org_id)
    if found is None:
        found = BillingAccount(
            org_id=org_id,
            tax_rate=Decimal(0),
            currency="usd",
            provider=provider.name,
            updated_at=ctx.clock.now(),
        )
        ctx.session.add(found)
        ctx.session.flush()
    return found


def set_tax_rate(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    tax_rate: Decimal,
    provider: PaymentProvider,
) -> BillingAccount:
    if not Decimal(0) <= tax_rate < Decimal(1):
        raise Unprocessable(
            "tax_rate is a fraction from 0 up to 1 (0.2 for 20%)", code="invalid_tax_rate"
        )
    account = _account_for_write(ctx, org.id, provider)
    before = format(account.tax_rate, "f")
    account.tax_rate = tax_rate
    account.updated_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        target_type="billing_account",
        target_id=org.id,
        summary={"tax_rate": {"before": before, "after": format(tax_rate, "f")}},
    )
    return account


def customer_of(ctx: Ctx, org: Organization, provider: PaymentProvider) -> str:
    """The org's customer id at `provider`, made there the first time it is needed."""
    account = _account_for_write(ctx, org.id, provider)
    if account.provider_customer_id is None or account.provider != provider.name:
        account.provider_customer_id = provider.ensure_customer(
            org_id=org.id, name=org.name, email=org.billing_email
        )
        account.provider = provider.name
    return account.provider_customer_id
