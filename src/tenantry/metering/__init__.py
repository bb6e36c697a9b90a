"""Usage metering: meters, usage events, hourly rollups, plan quotas and admission."""
