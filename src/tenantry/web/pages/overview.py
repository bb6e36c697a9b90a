"""An organization's overview: its plan, quotas, members and alerts at a glance."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.billing import subscriptions
from tenantry.metering import alerts, plans, quotas, summary
from tenantry.metering.periods import period_start
from tenantry.plans.catalog import Period
from tenantry.tenancy import repository as tenancy_repository
from tenantry.web.pages import page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page

router = page_router()
OrgRead = Annotated[Visit, Depends(org_page(Permission.ORG_READ))]


@router.get("/orgs/{org}")
def overview(request: Request, visit: OrgRead) -> Response:
    session, org = visit.ctx.session, visit.current_org
    now = visit.ctx.clock.now()
    usage_visible = visit.can(Permission.USAGE_READ)
    billing_visible = visit.can(Permission.BILLING_VIEW)
    usage = None
    if usage_visible:  # this calendar month (UTC), each meter's total, as the API's summary
        usage = summary.summarize(
            session,
            org_id=org.id,
            team_id=None,
            since=period_start(Period.MONTH, now),
            until=None,  # up to now, the current hour included
            group_by="meter",
            granularity=None,
            now=now,
        ).totals()
    subscription = subscriptions.subscription_of(session, org.id) if billing_visible else None
    context = {
        "visit": visit,
        "org": org,
        "plan": plans.effective_plan(session, org.id),
        "members": tenancy_repository.count_org_members(session, org_id=org.id),
        "quotas": quotas.quota_statuses(session, org.id, now=now) if usage_visible else [],
        "alerts": alerts.quota_alerts(session, org.id) if usage_visible else [],
        "usage_visible": usage_visible,
        "usage": usage,
        "billing_visible": billing_visible,
        "subscription": subscription,
        "upcoming": subscriptions.preview(session, org.id, now=now) if billing_visible else None,
    }
    return render(request, "org/overview.html", context)
