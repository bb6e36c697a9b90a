"""The plan catalog (prices, quotas, rate limits, overage rates, audit retention), custom plans
(per-org overrides), the effective plan of an org and the upgrade path: the one place that knows
plan names."""
