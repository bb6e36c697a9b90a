"""Usage metering: meters, usage events, hourly rollups, plan quotas and admission.

Importing the package registers what metering does for lower domains: a person joining an org
claims a slot of the plan's `team_members` quota."""

from sqlalchemy.orm import Session

from tenantry.metering.quotas import claim_count
from tenantry.tenancy.hooks import on_member_joining


def _claim_member(session: Session, org_id: str) -> None:
    claim_count(session, org_id, "team_members")


on_member_joining(_claim_member)
