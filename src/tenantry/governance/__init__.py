"""Governance: policies with conditions, actions and exceptions, evaluated in admission;
approval requests; violations; dry runs over recorded calls. Events in `governance.events` can be
subscribed to. See docs/governance.md."""

from tenantry.governance import evaluation as _evaluation  # noqa: F401  (an admission holder)
from tenantry.governance import model_access as _model_access  # noqa: F401  (a holder too)
