"""What enterprise sign-in holds about one person, for their export: the identity providers'
accounts linked to theirs. (Erasure needs nothing here: the links go with the account.)"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tenantry.sso import repository
from tenantry.sso.models import SsoIdentity


def linked_identities(session: Session, *, user_id: str, org_id: str | None) -> list[SsoIdentity]:
    """The person's linked identities; an org's view holds those its connections linked."""
    found = repository.identities_of_user(session, user_id=user_id)
    return [i for i in found if org_id is None or i.org_id == org_id]
