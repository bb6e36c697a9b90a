"""Route-table entries of the model registry and experiment tracking on Tenantry's own API (see
tests/matrix/routes.py for what an entry says). The MLflow face is not in this table: its
isolation, roles and audit are tested through MLflow's own client (tests/ml/)."""

from __future__ import annotations

import secrets
from typing import Any

from matrix.routes import PARAMS, WORLD_EXTRAS, RouteCase, World, WorldExtra
from tenantry.authz.catalog import Permission as P

FILE = (b"seeded bytes\n", {"content-type": "application/octet-stream"})


def _made(world: World, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    resp = world.client.request(method, path, headers=world.owner.headers, json=body)
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def _upload(world: World, path: str) -> None:
    resp = world.client.put(path, headers={**world.owner.headers, **FILE[1]}, content=FILE[0])
    assert resp.status_code == 201, resp.text


def _seed_tracking(world: World) -> dict[str, str]:
    team = f"/api/v1/teams/{world.team_id}"
    experiment = _made(world, "POST", f"{team}/experiments", {"name": "seeded"})["id"]
    run = _made(
        world,
        "POST",
        f"{team}/experiments/{experiment}/runs",
        {"name": "seeded-run", "hyperparameters": {"lr": 0.1}},
    )["id"]
    resp = world.client.post(
        f"{team}/experiments/{experiment}/runs/{run}/metrics",
        headers=world.owner.headers,
        json={"metrics": {"loss": 0.5}, "step": 1},
    )
    assert resp.status_code == 204, resp.text
    _upload(world, f"{team}/experiments/{experiment}/runs/{run}/artifact?path=notes.txt")
    return {"experiment": experiment, "run": run}


def tracked(world: World) -> dict[str, str]:
    """An experiment of the default team with one run (a hyperparameter, a metric, a file)."""
    found: dict[str, str] = world.once("ml_tracking", _seed_tracking)
    return found


def _seed_registry(world: World) -> dict[str, str]:
    team = f"/api/v1/teams/{world.team_id}"
    model = _made(world, "POST", f"{team}/models", {"name": "seeded-model"})["id"]
    _made(world, "POST", f"{team}/models/{model}/versions", {"label": "1.0.0"})
    _upload(world, f"{team}/models/{model}/versions/1/file?path=weights.bin")
    _made(world, "PUT", f"{team}/models/{model}/aliases/champion", {"version": 1})
    return {"model": model}


def registered(world: World) -> dict[str, str]:
    """A registered model of the default team: version 1 with a file, aliased `champion`."""
    found: dict[str, str] = world.once("ml_registry", _seed_registry)
    return found


def _seed(world: World) -> None:
    tracked(world)
    registered(world)


PARAMS["experiment"] = lambda w: tracked(w)["experiment"]
PARAMS["run"] = lambda w: tracked(w)["run"]
PARAMS["key"] = lambda w: "loss"
PARAMS["model"] = lambda w: registered(w)["model"]
PARAMS["version"] = lambda w: "1"
PARAMS["alias"] = lambda w: "champion"
WORLD_EXTRAS.append(
    WorldExtra(
        seed=_seed,
        ids=lambda w: {*tracked(w).values(), *registered(w).values()},
    )
)

RUN = "/teams/{team}/experiments/{experiment}/runs/{run}"
MODEL = "/teams/{team}/models/{model}"
VERSION = MODEL + "/versions/{version}"
READS = "ml_model_version_reads"
# Reads whose answers name no id of the tenant's (the isolation suite's `idless`).
BYTES = "a stored file's bytes, as uploaded"
FILES = "a listing of paths, sizes and digests"
POINTS = "a metric's values at their steps"
POINTS = "metric points are usage, not audit: the request is metered and the points are the record"


def _case(method: str, path: str, rule: P, **kw: Any) -> RouteCase:
    # A version's number, a metric's name and an alias are positions, not ids.
    positions = tuple(p for p in ("version", "key", "alias") if "{" + p + "}" in path)
    return RouteCase(method, "/api/v1" + path, rule, scope="team", positions=positions, **kw)


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


CASES: list[RouteCase] = [
    # experiments
    _case(
        "POST",
        "/teams/{team}/experiments",
        P.EXPERIMENT_CREATE,
        body=lambda w: {"name": _name("exp")},
    ),
    _case(
        "GET",
        "/teams/{team}/experiments",
        P.EXPERIMENT_READ,
        queries=("filter=name%20LIKE%20%27seed%25%27", "order_by=name%20DESC"),
    ),
    _case("GET", "/teams/{team}/experiments/{experiment}", P.EXPERIMENT_READ),
    _case(
        "PATCH",
        "/teams/{team}/experiments/{experiment}",
        P.EXPERIMENT_UPDATE,
        body=lambda w: {"description": "renamed"},
    ),
    _case("DELETE", "/teams/{team}/experiments/{experiment}", P.EXPERIMENT_DELETE),
    # runs
    _case(
        "POST",
        "/teams/{team}/experiments/{experiment}/runs",
        P.EXPERIMENT_CREATE,
        body=lambda w: {"name": "second", "hyperparameters": {"lr": 0.2}},
    ),
    _case(
        "GET",
        "/teams/{team}/experiments/{experiment}/runs",
        P.EXPERIMENT_READ,
        queries=("filter=metrics.loss%20%3C%201", "order_by=metrics.loss%20ASC"),
    ),
    _case("GET", "/teams/{team}/experiments/{experiment}/compare", P.EXPERIMENT_READ),
    _case("GET", RUN, P.EXPERIMENT_READ),
    _case("PATCH", RUN, P.EXPERIMENT_UPDATE, body=lambda w: {"status": "finished"}),
    _case("DELETE", RUN, P.EXPERIMENT_DELETE),
    _case(
        "POST",
        RUN + "/hyperparameters",
        P.EXPERIMENT_UPDATE,
        body=lambda w: {"hyperparameters": {"batch": 32}},
    ),
    _case("POST", RUN + "/tags", P.EXPERIMENT_UPDATE, body=lambda w: {"tags": {"k": "v"}}),
    _case(
        "POST",
        RUN + "/metrics",
        P.EXPERIMENT_UPDATE,
        body=lambda w: {"metrics": {"loss": 0.4}, "step": 2},
        audit=POINTS,
    ),
    _case("GET", RUN + "/metrics/{key}", P.EXPERIMENT_READ, idless=POINTS),
    _case("GET", RUN + "/artifacts", P.EXPERIMENT_READ, idless=FILES),
    _case("PUT", RUN + "/artifact", P.EXPERIMENT_UPDATE, always="path=up.txt", raw=lambda: FILE),
    _case("GET", RUN + "/artifact", P.EXPERIMENT_READ, always="path=notes.txt", idless=BYTES),
    # registered models
    _case("POST", "/teams/{team}/models", P.MODEL_CREATE, body=lambda w: {"name": _name("m")}),
    _case(
        "GET", "/teams/{team}/models", P.MODEL_READ, queries=("filter=name%20LIKE%20%27s%25%27",)
    ),
    _case("GET", MODEL, P.MODEL_READ),
    _case("PATCH", MODEL, P.MODEL_UPDATE, body=lambda w: {"metadata": {"owner": "vision"}}),
    _case("DELETE", MODEL, P.MODEL_DELETE),
    _case("POST", MODEL + "/versions", P.MODEL_UPDATE, body=lambda w: {"label": "1.1.0"}),
    _case("GET", MODEL + "/versions", P.MODEL_READ),
    _case("GET", VERSION, P.MODEL_READ, read_log=READS),
    _case("PATCH", VERSION, P.MODEL_UPDATE, body=lambda w: {"stage": "staging"}),
    _case("DELETE", VERSION, P.MODEL_DELETE),
    _case("GET", VERSION + "/reads", P.MODEL_READ),
    _case("GET", VERSION + "/files", P.MODEL_READ, idless=FILES),
    _case("PUT", VERSION + "/file", P.MODEL_UPDATE, always="path=extra.bin", raw=lambda: FILE),
    _case(
        "GET",
        VERSION + "/file",
        P.MODEL_READ,
        always="path=weights.bin",
        read_log=READS,
        idless=BYTES,
    ),
    _case("PUT", MODEL + "/aliases/{alias}", P.MODEL_UPDATE, body=lambda w: {"version": 1}),
    _case("DELETE", MODEL + "/aliases/{alias}", P.MODEL_UPDATE),
]
