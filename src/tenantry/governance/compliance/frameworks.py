"""What each framework's report holds: its sections in order, the controls each section speaks
to, and what the report proves and does not. Data only; the builder and the PDF read it, so a
framework is changed here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Framework = Literal["soc2", "gdpr", "hipaa"]
FRAMEWORKS: Final[tuple[Framework, ...]] = ("soc2", "gdpr", "hipaa")

ACCESS_REVIEW: Final = "access_review"
PRIVILEGED_ACTIONS: Final = "privileged_actions"
POLICY_ENFORCEMENT: Final = "policy_enforcement"
AUDIT_INTEGRITY: Final = "audit_integrity"
RETENTION: Final = "retention_and_classification"
DATA_SUBJECT_REQUESTS: Final = "data_subject_requests"

SECTION_TITLES: Final[dict[str, str]] = {
    ACCESS_REVIEW: "Access review",
    PRIVILEGED_ACTIONS: "Privileged actions",
    POLICY_ENFORCEMENT: "Policy violations and approvals",
    AUDIT_INTEGRITY: "Audit trail integrity",
    RETENTION: "Retention and data classification",
    DATA_SUBJECT_REQUESTS: "Data-subject requests",
}


@dataclass(frozen=True)
class FrameworkSpec:
    title: str
    # section -> the controls it is evidence for, in the framework's own references
    controls: dict[str, tuple[str, ...]]
    proves: tuple[str, ...]
    does_not_prove: tuple[str, ...]

    @property
    def sections(self) -> tuple[str, ...]:
        return tuple(self.controls)


# Said of every report, whatever the framework.
_PROVES: Final = (
    "Every audit event of the period listed here is in the organization's hash-chained audit "
    "trail, which verified as stated at generation time, up to the signed checkpoint named.",
    "The report's content is fixed by its SHA-256 digest, signed with the deployment's "
    "audit key (GET /api/v1/audit/public-key).",
)
_DOES_NOT_PROVE: Final = (
    "Anything outside this Tenantry deployment: the AI product's own systems, networks, "
    "infrastructure and people processes.",
    "That the controls are designed or operate effectively: it is evidence for an auditor, "
    "not an attestation.",
    "Events purged by retention before the period's report was generated, or access "
    "exercised directly on the database.",
)

SPECS: Final[dict[Framework, FrameworkSpec]] = {
    "soc2": FrameworkSpec(
        title="SOC 2 (Trust Services Criteria)",
        controls={
            ACCESS_REVIEW: ("CC6.1", "CC6.2", "CC6.3"),
            PRIVILEGED_ACTIONS: ("CC6.1", "CC6.6", "CC8.1"),
            POLICY_ENFORCEMENT: ("CC7.2", "CC7.3", "CC5.2"),
            AUDIT_INTEGRITY: ("CC7.2", "CC4.1"),
            RETENTION: ("C1.1", "C1.2"),
        },
        proves=(
            *_PROVES,
            "Who held which org and team role and grant at generation time, and every change "
            "of access recorded in the period (CC6.2, CC6.3).",
            "The privileged actions and the governance policies' denials, logs and approvals "
            "recorded in the period (CC6.1, CC7.2).",
        ),
        does_not_prove=(
            *_DOES_NOT_PROVE,
            "That access was reviewed and approved by management: it lists access, the "
            "review is the reader's.",
        ),
    ),
    "gdpr": FrameworkSpec(
        title="GDPR (Regulation (EU) 2016/679)",
        controls={
            ACCESS_REVIEW: ("Art. 5(1)(f)", "Art. 32(1)(b)"),
            PRIVILEGED_ACTIONS: ("Art. 32(4)",),
            POLICY_ENFORCEMENT: ("Art. 25", "Art. 32(1)(d)"),
            AUDIT_INTEGRITY: ("Art. 5(2)", "Art. 30"),
            RETENTION: ("Art. 5(1)(e)", "Art. 30(1)(f)"),
            DATA_SUBJECT_REQUESTS: ("Art. 15", "Art. 17", "Art. 20"),
        },
        proves=(
            *_PROVES,
            "The data-subject requests this deployment answered for the organization in the "
            "period: members' data exported by the organization (Art. 15, 20) and accounts "
            "erased (Art. 17).",
            "The retention and classification settings in force at generation time (Art. 5(1)(e)).",
        ),
        does_not_prove=(
            *_DOES_NOT_PROVE,
            "Requests answered outside Tenantry, or a person's own export of their account "
            "(it is theirs, not the organization's).",
            "A lawful basis for processing, or the content of the records of processing "
            "activities (Art. 30) beyond what is listed.",
        ),
    ),
    "hipaa": FrameworkSpec(
        title="HIPAA Security Rule (45 CFR Part 164)",
        controls={
            ACCESS_REVIEW: ("§164.308(a)(4)", "§164.312(a)(1)"),
            PRIVILEGED_ACTIONS: ("§164.308(a)(3)", "§164.312(a)(2)(i)"),
            POLICY_ENFORCEMENT: ("§164.308(a)(1)(ii)(D)", "§164.308(a)(6)"),
            AUDIT_INTEGRITY: ("§164.312(b)", "§164.312(c)(1)"),
            RETENTION: ("§164.316(b)(2)", "§164.312(c)(1)"),
            DATA_SUBJECT_REQUESTS: ("§164.524",),
        },
        proves=(
            *_PROVES,
            "Audit controls record activity on the organization's access and settings "
            "(§164.312(b)), and the record's integrity was checked (§164.312(c)(1)).",
            "Who held access at generation time and how it changed in the period (§164.308(a)(4)).",
        ),
        does_not_prove=(
            *_DOES_NOT_PROVE,
            "That protected health information passed through the platform was handled as the "
            "rule requires: Tenantry records access to its own resources, not the data's "
            "content.",
            "A risk analysis (§164.308(a)(1)(ii)(A)) or business associate agreements.",
        ),
    ),
}


def framework_named(name: str) -> Framework | None:
    for known in FRAMEWORKS:
        if known == name:
            return known
    return None
