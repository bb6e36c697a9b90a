"""Route-table entries of compliance reports (see tests/matrix/routes.py for what an entry
says)."""

from __future__ import annotations

from matrix.routes import PARAMS, WORLD_EXTRAS, P, RouteCase, World, WorldExtra
from matrix.routes import _case as case

# A month that has begun at any clock the suites run with (theirs starts on 2026-01-01).
REPORT = {"framework": "soc2", "period": "2026-01"}
SCHEDULE = {"frameworks": ["gdpr"], "recipients": ["dpo@example.com"]}


def _report(world: World) -> str:
    resp = world.client.post(
        f"/api/v1/orgs/{world.org_id}/compliance/reports", headers=world.owner.headers,
        json=REPORT,
    )  # fmt: skip
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def report_id(world: World) -> str:
    found: str = world.once("compliance_report", _report)
    return found


PARAMS["report_id"] = report_id
WORLD_EXTRAS.append(WorldExtra(seed=report_id, ids=lambda w: {report_id(w)}))

CASES: list[RouteCase] = [
    case("POST", "/orgs/{org}/compliance/reports", P.GOVERNANCE_MANAGE, scope="org",
         body=lambda w: REPORT),
    case("GET", "/orgs/{org}/compliance/reports", P.AUDIT_READ, scope="org",
         queries=("limit=1",)),
    case("GET", "/orgs/{org}/compliance/reports/{report_id}", P.AUDIT_READ, scope="org",
         queries=("format=json", "format=pdf")),
    case("GET", "/orgs/{org}/compliance/schedule", P.AUDIT_READ, scope="org",
         idless="the schedule names frameworks and email addresses, no ids"),
    case("PUT", "/orgs/{org}/compliance/schedule", P.GOVERNANCE_MANAGE, scope="org",
         body=lambda w: SCHEDULE),
]  # fmt: skip
