"""Outbound webhooks: per-org endpoints, events signed per the Standard Webhooks specification,
delivered from an outbox by the worker with retries, a delivery log, redelivery, and endpoints
disabled after repeated failure. See docs/webhooks.md."""

from tenantry.webhooks import sources as _sources  # noqa: F401  (hears other domains' events)
