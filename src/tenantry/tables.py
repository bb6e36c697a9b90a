"""Imports every domain's tables so `Base.metadata` is complete (for Alembic and for tests)."""

from tenantry.audit import models as audit_models
from tenantry.identity import models as identity_models
from tenantry.kit import idempotency
from tenantry.kit.db import Base
from tenantry.tenancy import models as tenancy_models

metadata = Base.metadata
__all__ = ["audit_models", "idempotency", "identity_models", "metadata", "tenancy_models"]
