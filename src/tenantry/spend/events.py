"""Spend's events, for the domains that deliver notifications (outbound webhooks, email).

`emit` is called in the transaction that raised the event (a budget alert), after its row and its
audit event are written; every subscriber registered with `subscribe` is called there too, so
what it writes (an outbox row, a delivery to make) commits or rolls back with the event. Nothing
is delivered from inside the transaction: a subscriber only records what to send.

Event types:

- `budget.threshold_reached`: a budget's period reached one of its warning thresholds;
- `budget.exceeded`: a budget's period spent its whole amount;
- `anomaly.detected`: a day's cost of a team, member, API key or model stood far above its
  baseline (`spend.anomalies`); the data explain it (value, baseline, MAD, score).

The payload is JSON-ready: ids, the budget's target, the amounts as decimal strings, times in
RFC 3339.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from tenantry.kit.events import Channel

BUDGET_THRESHOLD_REACHED: Final = "budget.threshold_reached"
BUDGET_EXCEEDED: Final = "budget.exceeded"
ANOMALY_DETECTED: Final = "anomaly.detected"
EVENT_TYPES: Final = (BUDGET_THRESHOLD_REACHED, BUDGET_EXCEEDED, ANOMALY_DETECTED)


@dataclass(frozen=True)
class SpendEvent:
    id: str  # the alert's (or anomaly's) id: one event each, so a subscriber can deduplicate
    type: str
    org_id: str
    team_id: str | None
    occurred_at: datetime
    data: dict[str, Any]


Subscriber = Callable[[Session, SpendEvent], None]
_CHANNEL: Final = Channel[SpendEvent]()
# Hear every spend event, in the transaction that raises it.
subscribe = _CHANNEL.subscribe
unsubscribe = _CHANNEL.unsubscribe
emit = _CHANNEL.emit
