"""SDK calls of metering (mixed into `tenantry.client.api.Api`); see that module's conventions."""

from __future__ import annotations


class MeteringCalls:
    """Routes of metering, described once for both clients."""
