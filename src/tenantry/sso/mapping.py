"""Mapping rules: what a person's groups and claims give them in an org — an org role, teams and
team roles — decided by the first rule that matches, else an explicit default, else refusal.

Pure data and decisions, with no database: SSO sign-in applies an outcome through
`sso.provisioning`, and any other source of groups (SCIM) can hand the same rules a `Profile`
and apply the same way. Teams are named by slug or id; `provisioning` resolves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, model_validator

from tenantry.kit.schemas import Input

MAX_RULES = 100


class Condition(Input):
    """All that is given must hold; an empty condition matches everyone."""

    group: str | None = Field(default=None, min_length=1, max_length=500)
    claim: str | None = Field(default=None, min_length=1, max_length=200)
    # The claim's value (a list claim matches when it contains the value).
    equals: str | None = Field(default=None, max_length=500)
    email_domain: str | None = Field(default=None, min_length=1, max_length=253)

    @model_validator(mode="after")
    def _claim_has_value(self) -> Condition:
        if (self.claim is None) != (self.equals is None):
            raise ValueError("`claim` and `equals` go together")
        return self

    def holds(self, profile: Profile) -> bool:
        if self.group is not None and self.group not in profile.groups:
            return False
        if self.claim is not None:
            value = profile.claims.get(self.claim)
            values = value if isinstance(value, list) else [value]
            if self.equals not in [str(v) for v in values if v is not None]:
                return False
        return self.email_domain is None or profile.email_domain == self.email_domain.lower()


class TeamGrant(Input):
    team: str = Field(min_length=1, max_length=64, description="The team's slug or id")
    role: str = Field(default="viewer", min_length=1, max_length=40)


class Grants(Input):
    org_role: str = Field(default="member", pattern="^(owner|admin|member)$")
    teams: list[TeamGrant] = Field(default_factory=list, max_length=100)


class Rule(Grants):
    when: Condition = Field(default_factory=Condition)


class MappingRules(Input):
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES)
    # What someone no rule matches gets; null refuses them.
    default: Grants | None = Field(default_factory=Grants)
    # Sign-in is refused unless the person is in every one of these groups.
    required_groups: list[str] = Field(default_factory=list, max_length=50)

    def managed_teams(self) -> set[str]:
        """Teams the rules speak of: membership in these follows the rules at every sign-in;
        other teams are left as people arranged them."""
        found = {grant.team for rule in self.rules for grant in rule.teams}
        if self.default is not None:
            found |= {grant.team for grant in self.default.teams}
        return found

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> MappingRules:
        return cls.model_validate(dict(stored or {}))


@dataclass(frozen=True)
class Profile:
    """What an identity provider said about a person, in the mapping's words."""

    email: str
    name: str = ""
    groups: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def email_domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


@dataclass(frozen=True)
class Outcome:
    """What the rules decided: grants (and which rule gave them), or why nobody gets in."""

    grants: Grants | None
    rule: int | None  # the index of the matching rule; None for the default or a refusal
    refusal: str | None = None  # missing_required_group | no_matching_rule

    @property
    def allowed(self) -> bool:
        return self.grants is not None

    def describe(self) -> dict[str, Any]:
        if self.grants is None:
            return {"allowed": False, "refusal": self.refusal}
        return {
            "allowed": True,
            "rule": self.rule,
            "org_role": self.grants.org_role,
            "teams": [g.model_dump() for g in self.grants.teams],
        }


def evaluate(rules: MappingRules, profile: Profile) -> Outcome:
    missing = [g for g in rules.required_groups if g not in profile.groups]
    if missing:
        return Outcome(None, None, "missing_required_group")
    for index, rule in enumerate(rules.rules):
        if rule.when.holds(profile):
            return Outcome(Grants(org_role=rule.org_role, teams=rule.teams), index)
    if rules.default is not None:
        return Outcome(rules.default, None)
    return Outcome(None, None, "no_matching_rule")
