"""Imports every domain's tables so `Base.metadata` is complete (for Alembic and for tests)."""

from tenantry.access import models as access_models
from tenantry.audit import models as audit_models
from tenantry.billing import models as billing_models
from tenantry.governance import models as governance_models
from tenantry.governance.compliance import models as compliance_models
from tenantry.identity import models as identity_models
from tenantry.kit import idempotency
from tenantry.kit.db import Base
from tenantry.metering import models as metering_models
from tenantry.ml import models as ml_models
from tenantry.operator import models as operator_models
from tenantry.plans import models as plans_models
from tenantry.privacy import models as privacy_models
from tenantry.scim import models as scim_models
from tenantry.spend import models as spend_models
from tenantry.sso import models as sso_models
from tenantry.tenancy import models as tenancy_models
from tenantry.throttling import models as throttling_models
from tenantry.webhooks import models as webhooks_models

metadata = Base.metadata
__all__ = [
    "access_models",
    "audit_models",
    "billing_models",
    "compliance_models",
    "governance_models",
    "idempotency",
    "identity_models",
    "metadata",
    "metering_models",
    "ml_models",
    "operator_models",
    "plans_models",
    "privacy_models",
    "scim_models",
    "spend_models",
    "sso_models",
    "tenancy_models",
    "throttling_models",
    "webhooks_models",
]
