"""Organizations, teams, memberships and invitations, and each org's security policy.

Importing the package registers the policy's account-wide rules with identity (the strictest
of a person's orgs' password, lockout, MFA and session rules)."""

from tenantry.identity.hooks import on_account_rules
from tenantry.tenancy.security import account_rules

on_account_rules(account_rules)
