"""An organization's overview: its plan, quotas, members and alerts at a glance."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.metering import alerts, plans, quotas
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
    context = {
        "visit": visit,
        "org": org,
        "plan": plans.effective_plan(session, org.id),
        "members": tenancy_repository.count_org_members(session, org_id=org.id),
        "quotas": quotas.quota_statuses(session, org.id, now=now) if usage_visible else [],
        "alerts": alerts.quota_alerts(session, org.id) if usage_visible else [],
        "usage_visible": usage_visible,
    }
    return render(request, "org/overview.html", context)
