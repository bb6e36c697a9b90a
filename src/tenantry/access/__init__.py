"""Custom roles, resource grants and templates (what `authz` decides over), and the access
questions: check, explain, who-can, what-can.

Importing the package registers its policy source with `authz`: every process that authorizes
anything has imported the tables (`tenantry.tables`), and so this package, first."""

from tenantry.access.policy_source import AccessPolicySource
from tenantry.authz.policy import register_source

register_source(AccessPolicySource())
