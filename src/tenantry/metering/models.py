"""Tables of metering. Every tenant-owned table leads with `org_id`."""

from __future__ import annotations
