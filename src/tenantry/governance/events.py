"""Governance's events, for the domains that deliver notifications (outbound webhooks, email).

`emit` is called in the transaction that raised the event, after its rows are written; every
subscriber registered with `subscribe` is called there too, so what it writes (an outbox row)
commits or rolls back with the event. Nothing is delivered from inside the transaction.

Event types:

- `policy.violated`: an admission was denied by a policy, or matched a policy's `log` action;
- `policy.notify`: an admission matched a policy with a `notify` action (its parameters say to
  whom);
- `approval.requested`, `approval.approved`, `approval.denied`, `approval.expired`,
  `approval.used`: an approval request's steps.

The payload is JSON-ready: ids, the policy, the values the conditions saw, times in RFC 3339.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from tenantry.kit.events import Channel

POLICY_VIOLATED: Final = "policy.violated"
POLICY_NOTIFY: Final = "policy.notify"
APPROVAL_REQUESTED: Final = "approval.requested"
APPROVAL_APPROVED: Final = "approval.approved"
APPROVAL_DENIED: Final = "approval.denied"
APPROVAL_EXPIRED: Final = "approval.expired"
APPROVAL_USED: Final = "approval.used"
EVENT_TYPES: Final = (
    POLICY_VIOLATED,
    POLICY_NOTIFY,
    APPROVAL_REQUESTED,
    APPROVAL_APPROVED,
    APPROVAL_DENIED,
    APPROVAL_EXPIRED,
    APPROVAL_USED,
)


@dataclass(frozen=True)
class GovernanceEvent:
    id: str  # the violation's or the approval's id (with the step): one event per step
    type: str
    org_id: str
    team_id: str | None
    occurred_at: datetime
    data: dict[str, Any]


Subscriber = Callable[[Session, GovernanceEvent], None]
_CHANNEL: Final = Channel[GovernanceEvent]()
# Hear every governance event, in the transaction that raises it.
subscribe = _CHANNEL.subscribe
unsubscribe = _CHANNEL.unsubscribe
emit = _CHANNEL.emit
