"""Outbound webhooks: the org's endpoints (add one with its event types, turn it off and on,
rotate its signing secret, remove it) and each endpoint's delivery log with redelivery and a
test event.

Each form calls the service the API's route calls, under the same permission (`webhook:read`
to see, `webhook:manage` to change), and its route is named for the audit action it records.
A signing secret appears once: in the answer to the form that made or rotated it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from tenantry.authz.catalog import Permission
from tenantry.kit.errors import Problem
from tenantry.web.forms import FORM, FormRefused, FormState, parse, refused
from tenantry.web.pages import changed, every, moved, page_router
from tenantry.web.templating import render
from tenantry.web.visit import Visit, org_page
from tenantry.webhooks import repository, service
from tenantry.webhooks.events import EVENT_TYPES
from tenantry.webhooks.models import WebhookEndpoint
from tenantry.webhooks.schemas import DeliveryOut, WebhookIn, WebhookOut

router = page_router()

WebhookRead = Annotated[Visit, Depends(org_page(Permission.WEBHOOK_READ))]
WebhookManage = Annotated[Visit, Depends(org_page(Permission.WEBHOOK_MANAGE))]


def _base(visit: Visit) -> str:
    return f"/orgs/{visit.current_org.slug}/webhooks"


def _page(
    request: Request,
    visit: Visit,
    *,
    form: FormState | None = None,
    notice: str = "",
    created: WebhookOut | None = None,
    secret: str = "",
) -> Response:
    org = visit.current_org
    rows = repository.endpoints_of(visit.ctx.session, org_id=org.id)
    state = form or FormState()
    context = {
        "visit": visit,
        "org": org,
        "endpoints": [WebhookOut.model_validate(r) for r in rows],
        "event_types": list(EVENT_TYPES.items()),
        # A refused form keeps the types that were ticked; a fresh one ticks none.
        "chosen_types": set(visit.form.getlist("event_types")) if state.failed else set(),
        "form": state,
        "notice": notice,
        "created": created,
        "secret": secret,
    }
    status = state.status if state.failed else 200
    return render(request, "webhooks.html", context, status=status, block="page")


@router.get("/orgs/{org}/webhooks")
def webhooks_page(request: Request, visit: WebhookRead) -> Response:
    return _page(request, visit)


@router.post("/orgs/{org}/webhooks", name="webhook.created")
def create_webhook(request: Request, visit: WebhookManage) -> Response:
    ctx = visit.ctx
    types = [str(t) for t in visit.form.getlist("event_types")]
    try:
        body = parse(WebhookIn, visit.form, extra={"event_types": types, "enabled": True})
        endpoint, secret = service.create_endpoint(
            ctx,
            visit.principal,
            org_id=visit.current_org.id,
            url=body.url,
            description=body.description,
            event_types=body.event_types,
            enabled=body.enabled,
        )
    except FormRefused as refusal:
        return _page(request, visit, form=refusal.state)
    except Problem as problem:
        ctx.session.rollback()
        fields = {"unknown_event_type": "event_types"}
        return _page(request, visit, form=_url_or(problem, visit.form, fields))
    ctx.done(None, status=201)
    # The secret is in this answer only: the page is rendered, not redirected to.
    shown = WebhookOut.model_validate(endpoint)
    return _page(request, visit, created=shown, secret=secret, notice="Endpoint added.")


def _url_or(problem: Problem, form: Any, fields: dict[str, str]) -> FormState:
    """A refusal beside its field: the guard's refusals of an address are the URL's."""
    state = refused(problem, form, fields).state
    if FORM in state.errors and problem.code not in fields:
        state.errors = {"url": state.errors.pop(FORM)}
    return state


# ---- one endpoint and its delivery log ----


def _endpoint(visit: Visit, webhook_id: str) -> WebhookEndpoint:
    return service.find_endpoint(visit.ctx, org_id=visit.current_org.id, endpoint_id=webhook_id)


def _endpoint_page(
    request: Request,
    visit: Visit,
    webhook_id: str,
    *,
    notice: str = "",
    problem: Problem | None = None,
    secret: str = "",
    status: int = 200,
) -> Response:
    session = visit.ctx.session
    found = _endpoint(visit, webhook_id)
    rows = every(
        lambda page: repository.deliveries(
            session, org_id=found.org_id, endpoint_id=found.id, page=page
        )
    )
    context = {
        "visit": visit,
        "org": visit.current_org,
        "endpoint": WebhookOut.model_validate(found),
        # Newest first: the log is read for what just happened.
        "deliveries": [DeliveryOut.model_validate(r) for r in reversed(rows)],
        "descriptions": EVENT_TYPES,
        "notice": notice,
        "problem": problem,
        "secret": secret,
    }
    return render(request, "webhook.html", context, status=status, block="page")


@router.get("/orgs/{org}/webhooks/{webhook_id}")
def webhook_page(request: Request, webhook_id: str, visit: WebhookRead) -> Response:
    return _endpoint_page(request, visit, webhook_id)


def _refused(request: Request, visit: Visit, webhook_id: str, problem: Problem) -> Response:
    if problem.status == 404:
        raise problem
    visit.ctx.session.rollback()
    return _endpoint_page(request, visit, webhook_id, problem=problem, status=problem.status)


def _toggle(request: Request, visit: Visit, webhook_id: str, *, enabled: bool) -> Response:
    ctx = visit.ctx
    try:
        found = _endpoint(visit, webhook_id)
        service.update_endpoint(ctx, visit.principal, found, {"enabled": enabled})
    except Problem as problem:
        return _refused(request, visit, webhook_id, problem)
    ctx.done(None)
    said = "Endpoint enabled." if enabled else "Endpoint disabled: nothing is sent to it."
    return changed(
        request,
        f"{_base(visit)}/{webhook_id}",
        lambda: _endpoint_page(request, visit, webhook_id, notice=said),
    )


# Both are the API's PATCH of `enabled`, so both record its action.
@router.post("/orgs/{org}/webhooks/{webhook_id}/enable", name="webhook.updated")
def enable_webhook(request: Request, webhook_id: str, visit: WebhookManage) -> Response:
    return _toggle(request, visit, webhook_id, enabled=True)


@router.post("/orgs/{org}/webhooks/{webhook_id}/disable", name="webhook.updated")
def disable_webhook(request: Request, webhook_id: str, visit: WebhookManage) -> Response:
    return _toggle(request, visit, webhook_id, enabled=False)


@router.post("/orgs/{org}/webhooks/{webhook_id}/rotate-secret", name="webhook.secret_rotated")
def rotate_secret(request: Request, webhook_id: str, visit: WebhookManage) -> Response:
    ctx = visit.ctx
    try:
        secret = service.rotate_secret(ctx, visit.principal, _endpoint(visit, webhook_id))
    except Problem as problem:
        return _refused(request, visit, webhook_id, problem)
    ctx.done(None)
    # Rendered, not redirected to: the new secret is shown in this answer only.
    said = "Secret rotated: deliveries are signed with the new one from now on."
    return _endpoint_page(request, visit, webhook_id, notice=said, secret=secret)


@router.post("/orgs/{org}/webhooks/{webhook_id}/test", name="webhook.tested")
def test_webhook(request: Request, webhook_id: str, visit: WebhookManage) -> Response:
    ctx = visit.ctx
    try:
        service.send_test(ctx, visit.principal, _endpoint(visit, webhook_id))
    except Problem as problem:
        return _refused(request, visit, webhook_id, problem)
    ctx.done(None, status=202)
    said = "Test event queued: the worker sends it, and its attempts appear below."
    return changed(
        request,
        f"{_base(visit)}/{webhook_id}",
        lambda: _endpoint_page(request, visit, webhook_id, notice=said),
    )


@router.post(
    "/orgs/{org}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    name="webhook_delivery.redelivered",
)
def redeliver(
    request: Request, webhook_id: str, delivery_id: str, visit: WebhookManage
) -> Response:
    ctx = visit.ctx
    try:
        found = _endpoint(visit, webhook_id)
        original = service.find_delivery(ctx, found, delivery_id)
        service.redeliver(ctx, visit.principal, found, original)
    except Problem as problem:
        return _refused(request, visit, webhook_id, problem)
    ctx.done(None, status=202)
    said = "Queued again as a new delivery of the same message."
    return changed(
        request,
        f"{_base(visit)}/{webhook_id}",
        lambda: _endpoint_page(request, visit, webhook_id, notice=said),
    )


@router.post("/orgs/{org}/webhooks/{webhook_id}/delete", name="webhook.deleted")
def delete_webhook(request: Request, webhook_id: str, visit: WebhookManage) -> Response:
    ctx = visit.ctx
    try:
        service.delete_endpoint(ctx, visit.principal, _endpoint(visit, webhook_id))
    except Problem as problem:
        return _refused(request, visit, webhook_id, problem)
    ctx.done(None, status=204)
    return moved(request, _base(visit))
