"""HTTP routes of personal data: a person's export, an org's export of a member, erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from tenantry.authz.catalog import Permission
from tenantry.http.auth import OrgScope, PrincipalDep, org_scope
from tenantry.http.body import JsonBodyRoute
from tenantry.http.work import CtxDep
from tenantry.kit.context import writes_on_get
from tenantry.privacy import service
from tenantry.privacy.schemas import EraseIn, PersonalDataOut

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)


@router.get("/users/me/export", response_model=PersonalDataOut, tags=["me"])
def export_my_data(ctx: CtxDep, principal: PrincipalDep) -> PersonalDataOut:
    """Everything Tenantry holds about the caller, as one JSON document (an API key sees its
    org's part only)."""
    data = service.export_own(ctx.session, principal, now=ctx.clock.now())
    return PersonalDataOut.of(data)


@router.get(
    "/orgs/{org}/members/{user}/export", response_model=PersonalDataOut, tags=["organizations"]
)
@writes_on_get
def export_member_data(
    user: str, scope: Annotated[OrgScope, Depends(org_scope(Permission.AUDIT_READ))]
) -> Response:
    """What this organization holds about one of its members (by id or email); the export is
    entered in the org's register of data-subject requests (compliance reports list it)."""
    data = service.export_member(
        scope.ctx.session, scope.principal, scope.org, user_ref=user, now=scope.ctx.clock.now()
    )
    return scope.ctx.done(PersonalDataOut.of(data))


@router.delete("/users/{user_id}", name="user.erased", status_code=204, tags=["me"])
def erase_user(user_id: str, body: EraseIn, ctx: CtxDep, principal: PrincipalDep) -> Response:
    """Erase your own account: `confirm` must be its email. Refused (409 `last_owner`) while
    you are the last owner of an organization."""
    service.erase_account(ctx, principal, user_id=user_id, confirm=body.confirm)
    return ctx.done(None, status=204)
