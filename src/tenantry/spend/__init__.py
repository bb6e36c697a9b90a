"""Spend: what LLM calls cost, by provider, model, member and key; the price table; budgets that
hold under concurrency (enforced inside metering's admission), their alerts and the events other
domains can subscribe to. See docs/spend.md."""

from tenantry.spend import budgets as _budgets  # noqa: F401  (an admission holder)
from tenantry.spend import calls as _calls  # noqa: F401  (a usage listener)
