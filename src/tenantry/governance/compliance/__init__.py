"""Compliance reports per org and period (SOC 2, GDPR, HIPAA): built from the audit trail and
the org's access, governance and privacy records, kept as signed JSON, drawn as PDF, made on
demand or monthly by the worker. See docs/governance.md, "Compliance reports"."""
