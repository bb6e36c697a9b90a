"""SDK calls of throttling (mixed into `tenantry.client.api.Api`); see that module's conventions."""

from __future__ import annotations


class ThrottlingCalls:
    """Routes of throttling, described once for both clients."""
