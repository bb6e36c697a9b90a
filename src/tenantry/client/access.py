"""SDK calls of access (mixed into `tenantry.client.api.Api`); see that module's conventions."""

from __future__ import annotations


class AccessCalls:
    """Routes of access, described once for both clients."""
