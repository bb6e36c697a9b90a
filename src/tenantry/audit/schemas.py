"""Bodies of the audit endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from tenantry.audit.service import EventView, Verdict
from tenantry.kit.schemas import Output


class AuditEventOut(Output):
    id: str
    chain_id: str
    seq: int
    org_id: str | None
    team_id: str | None
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    result: str
    request_id: str | None
    occurred_at: datetime
    summary: dict[str, Any]
    personal_digest: str | None
    prev_hash: str
    hash: str
    # Personal details, beside the chain (null once erased or purged).
    ip: str | None = None
    user_agent: str | None = None
    personal: dict[str, Any] | None = None

    @classmethod
    def of(cls, view: EventView) -> AuditEventOut:
        out = cls.model_validate(view.event)
        if view.personal is not None:
            out.ip, out.user_agent = view.personal.ip, view.personal.user_agent
            out.personal = view.personal.details or None
        return out


class FaultOut(BaseModel):
    seq: int
    kind: str
    detail: str


class VerdictOut(BaseModel):
    chain_id: str
    ok: bool
    events_checked: int
    first_seq: int | None
    last_seq: int
    head_seq: int
    checkpoints_checked: int
    fault: FaultOut | None = None

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictOut:
        fault = verdict.fault
        return cls(
            chain_id=verdict.chain_id,
            ok=verdict.ok,
            events_checked=verdict.events_checked,
            first_seq=verdict.first_seq,
            last_seq=verdict.last_seq,
            head_seq=verdict.head_seq,
            checkpoints_checked=verdict.checkpoints_checked,
            fault=FaultOut(seq=fault.seq, kind=fault.kind, detail=fault.detail) if fault else None,
        )


class CheckpointOut(Output):
    id: str
    chain_id: str
    seq: int
    hash: str
    created_at: datetime
    reason: str
    purged_through: int
    signature: str


class PublicKeyOut(BaseModel):
    algorithm: str
    public_key_pem: str
