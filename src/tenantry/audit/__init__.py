"""The audit trail: one event per user action, written in the same transaction as the action."""
