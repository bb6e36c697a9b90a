"""The event types an endpoint can subscribe to, and the message each one sends.

A message follows the Standard Webhooks payload structure: `{"type", "timestamp", "data"}`, where
`data` names the org and carries the event's own fields. Its JSON bytes are written once, in
the event's transaction, and signed as they are at each attempt.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

WEBHOOK_TEST: Final = "webhook.test"

# What an org may subscribe to, with what each one means (docs/webhooks.md lists them).
EVENT_TYPES: Final[dict[str, str]] = {
    "budget.threshold_reached": "A budget's period reached one of its warning thresholds",
    "budget.exceeded": "A budget's period spent its whole amount",
    "invoice.finalized": "An invoice was given its number and is due (or paid, at zero)",
    "invoice.paid": "An invoice was paid in full",
    "payment.succeeded": "A payment of an invoice went through",
    "payment.failed": "A payment of an invoice was declined",
    "policy.violated": "An admission was denied by a governance policy, or matched its log action",
    "policy.notify": "An admission matched a governance policy whose action is to notify",
    "approval.requested": "A request waits for an approver (a policy asked for approval)",
    "approval.approved": "An approver granted a request",
    "approval.denied": "An approver refused a request",
    "approval.expired": "A request for approval ran out of time",
    "approval.used": "The approved request was admitted (once)",
    "compliance.report_ready": "A compliance report was generated (on demand or by the "
    "monthly schedule)",
    "anomaly.detected": "A day's LLM cost of a team, member, API key or model stood far above "
    "its usual level",
}


def message_body(
    *, event_type: str, org_id: str, occurred_at: datetime, data: dict[str, Any]
) -> str:
    return json.dumps(
        {
            "type": event_type,
            "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
            "data": {"org_id": org_id, **data},
        },
        separators=(",", ":"),
        default=str,
    )
