"""Authorization benchmark: Tenantry's check against pycasbin (RBAC with domains), same data,
same random questions, same answers.

    .venv/bin/python bench/authz.py            # full size, a temp SQLite file
    .venv/bin/python bench/authz.py --quick    # smoke size (CI)
    .venv/bin/python bench/authz.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Data (full size): 100 orgs, 10,000 users (100 per org), 1,000 teams (10 per org, in trees, one
in ten refusing inheritance), 20 custom roles per org inheriting in chains from each other and
from the built-in roles, team memberships with built-in and custom roles, and 100,000 resource
grants (1,000 per org; to users and to teams; on single models, on whole teams and on every model
of a team; by role or by explicit permissions; 10% expiring, half of those already expired).

Measured, on the same random questions (user, permission, team or model):
- `tenantry.warm_*`: `Snapshot.check` with the org's snapshot cached and its memo warm;
  `checks_per_s` is a tight loop of those. `request_*`: what a request pays — the version stamp
  read (one primary-key lookup on a fresh session) and the check.
- `tenantry.cold_*`: the snapshot cache cleared before each question: the org's policy is read
  from the database and compiled, then the check. `cold_memo_*`: the snapshot kept, its memo
  cleared (the first question of a principal on a team).
- `pycasbin`: the same model expressed as RBAC with domains — one enforcer per org (favourable
  to it: a smaller policy each), roles flattened, team inheritance and team subjects expanded into
  role links, grants live at the benchmark's instant (casbin has no expiry). Every sampled
  question is asked of both; the benchmark fails on the first disagreement.
- `http`: `POST /api/v1/orgs/{org}/access/check` on the real app under uvicorn on loopback, 32
  concurrent clients, each request an API key of a user (the decision checked against the
  engine's). `visibility`: a grant revoked through one `Database` (process) is refused by another
  on its next check.

Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import casbin
import httpx
import uvicorn
from casbin.model import Model
from sqlalchemy import create_engine, delete, insert, text
from sqlalchemy.engine import make_url

from tenantry.access.models import CustomRole, Grant
from tenantry.app import create_app
from tenantry.authz import policy
from tenantry.authz.catalog import (
    ORG_MEMBER_PERMISSIONS,
    ORG_ROLE_AS_TEAM_ROLE,
    OrgRole,
    Permission,
    TeamRole,
)
from tenantry.authz.engine import Resource, Snapshot, Subject
from tenantry.config import Settings
from tenantry.identity.models import ApiKey, User
from tenantry.identity.service import API_KEY_PREFIX
from tenantry.kit import stamps
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.ids import new_id
from tenantry.kit.migrations import upgrade
from tenantry.kit.security import token_hash
from tenantry.kit.stamps import OrgVersion
from tenantry.tenancy.models import Organization, OrgMembership, Team, TeamMembership

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SIZES = {
    "full": {"orgs": 100, "users_per_org": 100, "teams_per_org": 10, "roles_per_org": 20,
             "grants_per_org": 1_000, "questions": 20_000, "casbin_questions": 2_000,
             "cold_questions": 300, "http_requests": 3_200},
    "quick": {"orgs": 4, "users_per_org": 50, "teams_per_org": 10, "roles_per_org": 20,
              "grants_per_org": 500, "questions": 2_000, "casbin_questions": 300,
              "cold_questions": 50, "http_requests": 320},
}  # fmt: skip
HTTP_CLIENTS = 32
MODELS_PER_ORG = 300
TARGETS = {"warm_p50_us_max": 10.0, "speedup_min": 100.0, "cold_p50_us_max": 1_000.0}
ASKED = [
    Permission.MODEL_READ,
    Permission.MODEL_UPDATE,
    Permission.MODEL_DELETE,
    Permission.EXPERIMENT_CREATE,
    Permission.TEAM_UPDATE,
    Permission.GRANT_MANAGE,
    Permission.USAGE_READ,
    Permission.AUDIT_READ,
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# ---- machine ----


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


# ---- the data set ----


@dataclass
class OrgData:
    id: str
    users: list[str]
    teams: list[str]
    parents: dict[str, str | None]
    inherits: dict[str, bool]
    org_roles: dict[str, OrgRole]
    team_roles: dict[tuple[str, str], str]
    roles: dict[str, tuple[list[str], list[str]]]  # id → (permissions, inherits)
    grants: list[dict[str, Any]]
    models: dict[str, str]  # model id → team
    keys: dict[str, str] = field(default_factory=dict)  # user id → API key secret


def make_org(rng: random.Random, size: dict[str, int]) -> OrgData:
    org_id = new_id("org")
    users = [new_id("usr") for _ in range(size["users_per_org"])]
    teams = [new_id("team") for _ in range(size["teams_per_org"])]
    parents: dict[str, str | None] = {}
    for i, team in enumerate(teams):
        parents[team] = None if i < 3 else teams[rng.randrange(i)]
    inherits = {team: rng.random() >= 0.1 for team in teams}
    org_roles = {u: OrgRole.MEMBER for u in users}
    org_roles[users[0]] = OrgRole.OWNER
    for u in users[1:3]:
        org_roles[u] = OrgRole.ADMIN
    catalog = [p.value for p in Permission]
    roles: dict[str, tuple[list[str], list[str]]] = {}
    for i in range(size["roles_per_org"]):
        parent = (
            [rng.choice(["viewer", "editor"])]
            if i == 0 or rng.random() < 0.3
            else [list(roles)[-1]]
        )
        roles[new_id("role")] = (rng.sample(catalog, rng.randint(1, 3)), parent)
    refs = [r.value for r in TeamRole if r is not TeamRole.OWNER] + list(roles)
    team_roles: dict[tuple[str, str], str] = {}
    for u in users[3:]:
        for team in rng.sample(teams, rng.randint(1, 2)):
            team_roles[(team, u)] = rng.choice(refs)
    models = {new_id("mdl"): rng.choice(teams) for _ in range(MODELS_PER_ORG)}
    model_ids = list(models)
    grants: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str, str]] = set()
    while len(grants) < size["grants_per_org"]:
        subject = (
            ("team", rng.choice(teams)) if rng.random() < 0.15 else ("user", rng.choice(users))
        )
        kind = rng.random()
        if kind < 0.6:
            model = rng.choice(model_ids)
            resource = ("model", model, models[model])
        elif kind < 0.85:
            team = rng.choice(teams)
            resource = ("team", team, team)
        else:
            resource = ("model", "*", rng.choice(teams))
        key = (*subject, resource[0], resource[1])
        if key in seen:
            continue
        seen.add(key)
        expires = None
        if rng.random() < 0.1:
            expires = NOW + timedelta(hours=rng.choice([-1, 1]) * rng.randint(1, 48))
        by_role = rng.random() < 0.7
        grants.append(
            {
                "id": new_id("grt"),
                "org_id": org_id,
                "team_id": resource[2],
                "subject_type": subject[0],
                "subject_id": subject[1],
                "resource_type": resource[0],
                "resource_id": resource[1],
                "role": rng.choice(refs) if by_role else None,
                "permissions": None if by_role else rng.sample(catalog, rng.randint(1, 3)),
                "expires_at": expires,
                "granted_by": users[0],
                "reason": "",
                "created_at": NOW,
            }
        )
    return OrgData(
        org_id, users, teams, parents, inherits, org_roles, team_roles, roles, grants, models
    )


def load(db: Database, orgs: list[OrgData]) -> None:
    rows: dict[Any, list[dict[str, Any]]] = {
        t: [] for t in (Organization, User, OrgMembership, Team, TeamMembership, CustomRole, Grant)
    }
    rows[OrgVersion] = []
    rows[ApiKey] = []
    for org in orgs:
        rows[Organization].append(
            {"id": org.id, "name": org.id, "slug": org.id.replace("_", "-"), "plan": "enterprise",
             "settings": {}, "status": "active", "created_at": NOW, "updated_at": NOW}
        )  # fmt: skip
        rows[OrgVersion].append({"org_id": org.id, "version": 1})
        for u in org.users:
            rows[User].append(
                {"id": u, "email": f"{u}@bench.example", "email_normalized": f"{u}@bench.example",
                 "username": u, "full_name": "", "status": "active", "created_at": NOW,
                 "updated_at": NOW}
            )  # fmt: skip
            rows[OrgMembership].append(
                {"id": new_id("mem"), "org_id": org.id, "user_id": u,
                 "role": org.org_roles[u].value, "created_at": NOW}
            )  # fmt: skip
        for team in org.teams:
            rows[Team].append(
                {"id": team, "org_id": org.id, "name": team, "slug": team.replace("_", "-"),
                 "description": "", "parent_team_id": None, "created_at": NOW, "updated_at": NOW,
                 "settings": {} if org.inherits[team] else {"inherit_access": False}}
            )  # fmt: skip
        for (team, u), role in org.team_roles.items():
            rows[TeamMembership].append(
                {"id": new_id("tmm"), "org_id": org.id, "team_id": team, "user_id": u,
                 "role": role, "created_at": NOW}
            )  # fmt: skip
        for role_id, (perms, parents) in org.roles.items():
            rows[CustomRole].append(
                {"id": role_id, "org_id": org.id, "name": role_id.lower()[5:], "description": "",
                 "permissions": perms, "inherits": parents, "created_at": NOW, "updated_at": NOW}
            )  # fmt: skip
        rows[Grant].extend(org.grants)
    with db.writer_engine.begin() as conn:
        for table, values in rows.items():
            for start in range(0, len(values), 5_000):
                if values[start : start + 5_000]:
                    conn.execute(insert(table), values[start : start + 5_000])
        for org in orgs:  # parents after every team exists
            for team, parent in org.parents.items():
                if parent is not None:
                    conn.execute(
                        Team.__table__.update()  # type: ignore[attr-defined]
                        .where(Team.__table__.c.id == team)  # type: ignore[attr-defined]
                        .values(parent_team_id=parent)
                    )


# ---- questions ----


@dataclass(frozen=True)
class Question:
    org: str
    user: str
    permission: Permission
    resource: Resource


def questions(rng: random.Random, orgs: list[OrgData], count: int) -> list[Question]:
    found = []
    for _ in range(count):
        org = rng.choice(orgs)
        user = rng.choice(org.users)
        kind = rng.random()
        if kind < 0.5:
            model = rng.choice(list(org.models))
            resource = Resource("model", model, org.models[model])
        elif kind < 0.8:
            resource = Resource("team", rng.choice(org.teams))
        else:
            resource = Resource("model", new_id("mdl"), rng.choice(org.teams))
        found.append(Question(org.id, user, rng.choice(ASKED), resource))
    return found


# ---- Tenantry ----


def tenantry_figures(
    db: Database, orgs: list[OrgData], asked: list[Question], cold_count: int
) -> tuple[dict[str, Any], dict[Question, bool]]:
    stamps.clear_caches()
    snapshots: dict[str, Snapshot] = {}
    rebuild: list[float] = []
    for org in orgs:
        with db.session(write=False) as session:
            started = time.perf_counter()
            snapshots[org.id] = policy.snapshot_for(session, org.id)
            rebuild.append((time.perf_counter() - started) * 1e6)
    decisions: dict[Question, bool] = {}
    for q in asked:  # warms every memo
        decisions[q] = (
            snapshots[q.org].check(Subject("user", q.user), q.permission, q.resource, NOW).allowed
        )
    warm: list[float] = []
    clock = time.perf_counter_ns
    for q in asked:
        snapshot, subject = snapshots[q.org], Subject("user", q.user)
        started = clock()
        snapshot.check(subject, q.permission, q.resource, NOW)
        warm.append((clock() - started) / 1000)
    prepared = [
        (snapshots[q.org], Subject("user", q.user), q.permission, q.resource) for q in asked
    ]
    started = clock()
    for snapshot, subject, permission, resource in prepared:
        snapshot.check(subject, permission, resource, NOW)
    checks_per_s = len(prepared) / ((clock() - started) / 1e9)
    request: list[float] = []
    for q in asked[: cold_count * 4]:
        started = clock()
        with db.session(write=False) as session:
            snapshot = policy.principal_snapshot(session, q.org, q.user)
            snapshot.check(Subject("user", q.user), q.permission, q.resource, NOW)
        request.append((clock() - started) / 1000)
    cold_memo: list[float] = []
    for q in asked[: cold_count * 4]:
        snapshot = snapshots[q.org]
        snapshot.clear_memo()
        started = clock()
        snapshot.check(Subject("user", q.user), q.permission, q.resource, NOW)
        cold_memo.append((clock() - started) / 1000)
    cold: list[float] = []
    for q in asked[:cold_count]:
        stamps.clear_caches()
        started = clock()
        with db.session(write=False) as session:
            snapshot = policy.principal_snapshot(session, q.org, q.user)
            allowed = snapshot.check(Subject("user", q.user), q.permission, q.resource, NOW).allowed
        cold.append((clock() - started) / 1000)
        assert allowed == decisions[q], f"cold and warm disagree on {q}"
    for values in (warm, request, cold_memo, cold, rebuild):
        values.sort()
    return (
        {
            "warm_p50_us": round(percentile(warm, 0.5), 2),
            "warm_p99_us": round(percentile(warm, 0.99), 2),
            "checks_per_s": round(checks_per_s),
            "request_p50_us": round(percentile(request, 0.5), 1),
            "request_p99_us": round(percentile(request, 0.99), 1),
            "cold_p50_us": round(percentile(cold, 0.5), 1),
            "cold_p99_us": round(percentile(cold, 0.99), 1),
            "cold_memo_p50_us": round(percentile(cold_memo, 0.5), 2),
            "cold_memo_p99_us": round(percentile(cold_memo, 0.99), 2),
            "snapshot_build_p50_ms": round(percentile(rebuild, 0.5) / 1000, 2),
            "allowed_share": round(sum(decisions.values()) / len(decisions), 3),
        },
        decisions,
    )


# ---- pycasbin ----

CASBIN_MODEL = """
[request_definition]
r = sub, dom, obj, kind, act
[policy_definition]
p = sub, act
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.act == p.act && (g(r.sub, p.sub, r.dom) || g(r.sub, p.sub, r.obj) || g(r.sub, p.sub, r.kind))
"""


def casbin_enforcer(org: OrgData, snapshot: Snapshot) -> casbin.Enforcer:
    """The org's policy as RBAC with domains: a role per role (flattened permissions), domains
    are teams (team-level roles), `model:ID` (one model's grants) and `model@TEAM` (every model
    of a team); inheritance down the team tree and team subjects expanded into role links."""
    model = Model()
    model.load_model_from_text(CASBIN_MODEL)
    enforcer = casbin.Enforcer(model)
    policies: list[list[str]] = []
    role_perms = {ref: snapshot.role_permissions[ref] for ref in snapshot.role_permissions}
    for ref, perms in role_perms.items():
        policies += [[f"role:{ref}", p.value] for p in perms]
    policies += [["org_member", p.value] for p in ORG_MEMBER_PERMISSIONS]
    reaches = {t: [c for c in org.teams if t in snapshot.chains[c]] for t in org.teams}
    links: list[list[str]] = []
    members: dict[str, list[str]] = {t: [] for t in org.teams}
    for (team, user), _ in org.team_roles.items():
        members[team].append(user)
    for user, org_role in org.org_roles.items():
        as_team = ORG_ROLE_AS_TEAM_ROLE[org_role]
        for team in org.teams:
            links.append([user, "org_member", team])
            if as_team is not None:
                links.append([user, f"role:{as_team.value}", team])
    for (team, user), ref in org.team_roles.items():
        links += [[user, f"role:{ref}", below] for below in reaches[team]]
    for grant in org.grants:
        if grant["expires_at"] is not None and grant["expires_at"] <= NOW:
            continue  # casbin has no expiry: the grants live at the benchmark's instant
        if grant["role"] is not None:
            role = f"role:{grant['role']}"
        else:
            role = f"grant:{grant['id']}"
            policies += [[role, p] for p in grant["permissions"]]
        if grant["subject_type"] == "user":
            holders = [grant["subject_id"]]
        else:
            holders = members[grant["subject_id"]]
        if grant["resource_type"] == "team":
            domains = reaches[grant["team_id"]]
        elif grant["resource_id"] == "*":
            domains = [f"model@{t}" for t in reaches[grant["team_id"]]]
        else:
            domains = [f"model:{grant['resource_id']}"]
        links += [[holder, role, domain] for holder in holders for domain in domains]
    enforcer.add_policies(sorted({tuple(p) for p in policies}))  # type: ignore[arg-type]
    enforcer.add_named_grouping_policies("g", sorted({tuple(lk) for lk in links}))  # type: ignore[arg-type]
    return enforcer


def casbin_request(q: Question) -> tuple[str, str, str, str, str]:
    r = q.resource
    if r.type == "team":
        return (q.user, r.id, f"team:{r.id}", f"team@{r.id}", q.permission.value)
    return (q.user, str(r.team_id), f"model:{r.id}", f"model@{r.team_id}", q.permission.value)


def casbin_figures(
    orgs: list[OrgData],
    snapshots: dict[str, Snapshot],
    asked: list[Question],
    decisions: dict[Question, bool],
) -> dict[str, Any]:
    needed = {q.org for q in asked}
    started = time.perf_counter()
    enforcers = {o.id: casbin_enforcer(o, snapshots[o.id]) for o in orgs if o.id in needed}
    build_s = time.perf_counter() - started
    times: list[float] = []
    for q in asked:
        request = casbin_request(q)
        begun = time.perf_counter_ns()
        allowed = enforcers[q.org].enforce(*request)
        times.append((time.perf_counter_ns() - begun) / 1000)
        if allowed != decisions[q]:
            raise SystemExit(
                f"pycasbin and Tenantry disagree on {q}: casbin {allowed}, tenantry {decisions[q]}"
            )
    total = sum(times) / 1e6
    times.sort()
    return {
        "p50_us": round(percentile(times, 0.5), 1),
        "p99_us": round(percentile(times, 0.99), 1),
        "checks_per_s": round(len(times) / total),
        "questions": len(times),
        "enforcers": len(enforcers),
        "policy_lines_per_org": round(
            statistics.mean(
                len(e.get_policy()) + len(e.get_grouping_policy()) for e in enforcers.values()
            )
        ),
        "build_s": round(build_s, 2),
        "agreed": len(times),
    }


# ---- HTTP ----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def issue_keys(db: Database, orgs: list[OrgData], asked: list[Question]) -> None:
    """An org-wide API key (no permission subset) for each asking user: it acts as that user."""
    users = {(q.org, q.user) for q in asked}
    by_id = {o.id: o for o in orgs}
    rows = []
    for org_id, user in users:
        secret = f"{API_KEY_PREFIX}{secrets.token_urlsafe(32)}"
        by_id[org_id].keys[user] = secret
        rows.append(
            {"id": new_id("key"), "org_id": org_id, "team_id": None, "name": "bench",
             "display_prefix": secret[:12], "secret_hash": token_hash(secret),
             "permissions": None, "created_by": user, "created_at": NOW,
             "last_used_at": NOW + timedelta(days=365)}
        )  # fmt: skip
    with db.writer_engine.begin() as conn:
        conn.execute(insert(ApiKey), rows)


@contextlib.contextmanager
def serving(db_url: str, scratch: Path) -> Iterator[str]:
    settings = Settings(
        data_dir=scratch,
        database_url=db_url,
        secret_key="bench-secret-" + "x" * 40,
        rate_limit_multiplier=10_000,
    )
    app = create_app(settings, clock=FrozenClock(NOW))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def http_load(
    base: str, orgs: list[OrgData], asked: list[Question], decisions: dict[Question, bool]
) -> dict[str, Any]:
    keys = {o.id: o.keys for o in orgs}
    queue: asyncio.Queue[Question] = asyncio.Queue()
    for q in asked:
        queue.put_nowait(q)
    latencies: list[float] = []
    errors: list[str] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            while not queue.empty():
                q = queue.get_nowait()
                r = q.resource
                body: dict[str, Any] = {
                    "permission": q.permission.value,
                    "resource": {"type": r.type, "id": r.id},
                }
                if r.type != "team":
                    body["resource"]["team_id"] = r.team_id
                begun = time.perf_counter()
                resp = await http.post(
                    f"/api/v1/orgs/{q.org}/access/check",
                    json=body,
                    headers={"Authorization": f"Bearer {keys[q.org][q.user]}"},
                )
                latencies.append((time.perf_counter() - begun) * 1e3)
                if resp.status_code != 200:
                    errors.append(f"{resp.status_code} {resp.text[:200]}")
                elif resp.json()["allowed"] != decisions[q]:
                    errors.append(f"HTTP and the engine disagree on {q}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(HTTP_CLIENTS)))
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"HTTP check failed: {errors[:3]}")
    latencies.sort()
    return {
        "clients": HTTP_CLIENTS,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


def visibility(db_url: str, org: OrgData) -> dict[str, Any]:
    """A grant revoked through one Database (a process) is refused by another on its next check."""
    here, there = Database(db_url), Database(db_url)
    try:
        grant = next(
            g for g in org.grants
            if g["subject_type"] == "user" and g["expires_at"] is None
            and g["resource_type"] == "model" and g["resource_id"] != "*"
        )  # fmt: skip
        subject = Subject("user", grant["subject_id"])
        resource = Resource("model", grant["resource_id"], grant["team_id"])
        asked = [p for p in Permission if p.value in (grant["permissions"] or []) or grant["role"]]
        with there.session(write=False) as session:
            snapshot = policy.snapshot_for(session, org.id)
            held = [
                p
                for p in asked
                if snapshot.check(subject, p, resource, NOW).via == f"grant:{grant['id']}"
            ]
        with here.session(write=True) as session:
            session.execute(delete(Grant).where(Grant.id == grant["id"]))
            session.commit()
        started = time.perf_counter()
        with there.session(write=False) as session:
            snapshot = policy.snapshot_for(session, org.id)
            still = [
                p
                for p in held
                if snapshot.check(subject, p, resource, NOW).via == f"grant:{grant['id']}"
            ]
        return {
            "revoked_grant_refused_on_next_check": bool(held) and not still,
            "next_check_ms": round((time.perf_counter() - started) * 1e3, 2),
        }
    finally:
        here.dispose()
        there.dispose()


# ---- databases ----


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    if url is not None and url.startswith("postgresql"):
        server = make_url(url).set(drivername="postgresql+psycopg")
        name = f"tenantry_bench_{secrets.token_hex(4)}"
        admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            made = server.set(database=name).render_as_string(hide_password=False)
            upgrade(made)
            yield made
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        return
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as scratch:
        made = url or f"sqlite:///{scratch}/authz.db"
        upgrade(made)
        yield made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (as CI runs it)")
    parser.add_argument("--database-url", help="a PostgreSQL server (a throwaway database is made "
                        "on it) or a scratch SQLite file; default: a temp SQLite file")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    rng = random.Random(args.seed)
    load_before = os.getloadavg()[0]
    with database(args.database_url) as db_url, tempfile.TemporaryDirectory() as scratch:
        log(f"building {size['orgs']} orgs …")
        orgs = [make_org(rng, size) for _ in range(size["orgs"])]
        db = Database(db_url)
        started = time.perf_counter()
        load(db, orgs)
        took = time.perf_counter() - started
        log(f"loaded in {took:.1f}s; asking {size['questions']} questions …")
        asked = questions(rng, orgs, size["questions"])
        ours, decisions = tenantry_figures(db, orgs, asked, size["cold_questions"])
        log(f"tenantry: {ours}")
        with db.session(write=False) as session:
            snapshots = {o.id: policy.snapshot_for(session, o.id) for o in orgs}
        peer = casbin_figures(orgs, snapshots, asked[: size["casbin_questions"]], decisions)
        log(f"pycasbin: {peer}")
        sample = asked[: size["http_requests"]]
        issue_keys(db, orgs, sample)
        with serving(db_url, Path(scratch)) as base:
            http = asyncio.run(http_load(base, orgs, sample, decisions))
        log(f"http: {http}")
        seen = visibility(db_url, orgs[0])
        db.dispose()
    report = {
        "size": "quick" if args.quick else "full",
        "database": make_url(db_url).get_backend_name(),
        "data": {
            "orgs": size["orgs"],
            "users": size["orgs"] * size["users_per_org"],
            "teams": size["orgs"] * size["teams_per_org"],
            "custom_roles": size["orgs"] * size["roles_per_org"],
            "grants": size["orgs"] * size["grants_per_org"],
            "expiring_share": 0.1,
            "questions": len(asked),
        },
        "tenantry": ours,
        "pycasbin": peer,
        "speedup": round(ours["checks_per_s"] / peer["checks_per_s"], 1),
        "http": http,
        "visibility": seen,
        "targets": {
            **TARGETS,
            "warm_met": ours["warm_p50_us"] <= TARGETS["warm_p50_us_max"],
            "speedup_met": ours["checks_per_s"] / peer["checks_per_s"] >= TARGETS["speedup_min"],
            "cold_met": ours["cold_p50_us"] <= TARGETS["cold_p50_us_max"],
        },
        "machine": {
            **machine(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
