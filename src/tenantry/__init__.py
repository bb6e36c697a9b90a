"""Tenantry: multi-tenant team and enterprise control plane for AI/ML platforms."""

__version__ = "0.1.0"
