"""Artifact storage: a local directory by default, an S3-compatible bucket by setting (tested
against moto's S3 server, run as a subprocess on a loopback port), both streamed with bounded
memory, checksummed, counted against `storage_gb`, and removed once a deleting transaction
commits."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import Factory, Tenant
from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.ml.stores import CHUNK, ArtifactStore, LocalStore, S3Store

BUCKET = "tenantry-artifacts"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, ready once it says where it runs."""
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    url = None
    for line in server.stdout:  # blocks until the server prints its address
        found = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
        if found:
            url = found.group(1)
            break
    assert url is not None, "moto's server did not start"
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    buckets = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if BUCKET not in buckets:
        client.create_bucket(Bucket=BUCKET)
    return s3_endpoint


class Pattern:
    """`size` bytes of a repeating pattern, read as a stream (never held whole)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = bytes(range(256)) * 4096  # 1 MiB
        self.biggest_read = 0

    def read(self, size: int = -1, /) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.biggest_read = max(self.biggest_read, size)
        out = (self.block * (size // len(self.block) + 1))[:size]
        self.left -= size
        return out


def _digest(size: int) -> str:
    return hashlib.sha256(Pattern(size).read()).hexdigest()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    endpoint = request.getfixturevalue("s3_env")
    return S3Store(BUCKET, prefix=f"t-{os.urandom(4).hex()}", endpoint_url=endpoint)


def test_a_store_streams_both_ways(store: ArtifactStore) -> None:
    size = 20 * CHUNK + 7  # past S3's multipart threshold: uploaded a part at a time
    source = Pattern(size)
    staged = store.stage(source)
    store.promote(staged, "org/team/exp/run/artifacts/big.bin")
    digest, total, largest = hashlib.sha256(), 0, 0
    for chunk in store.read("org/team/exp/run/artifacts/big.bin"):
        digest.update(chunk)
        total += len(chunk)
        largest = max(largest, len(chunk))
    assert total == size and digest.hexdigest() == _digest(size)
    assert largest <= 8 * CHUNK and source.biggest_read <= 8 * CHUNK
    store.delete_prefix("org/team/exp/run")
    with pytest.raises(FileNotFoundError):
        list(store.read("org/team/exp/run/artifacts/big.bin"))
    discarded = store.stage(Pattern(10))
    store.discard(discarded)


def _app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, clock=FrozenClock(), database=database)


@pytest.fixture(params=["local", "s3"])
def artifact_client(
    request: pytest.FixtureRequest, settings: Settings, database: Database
) -> Iterator[TestClient]:
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_env")
        settings = settings.model_copy(
            update={
                "artifact_store": "s3",
                "artifact_s3_bucket": BUCKET,
                "artifact_s3_prefix": f"t-{os.urandom(4).hex()}",
                "artifact_s3_endpoint_url": endpoint,
            }
        )
    with TestClient(_app(settings, database), raise_server_exceptions=False) as client:
        yield client


def _run(client: TestClient, tenant: Tenant) -> str:
    team = f"/api/v1/teams/{tenant.team_id}"
    experiment = client.post(f"{team}/experiments", headers=tenant.headers, json={"name": "e"})
    assert experiment.status_code == 201, experiment.text
    run = client.post(
        f"{team}/experiments/{experiment.json()['id']}/runs", headers=tenant.headers, json={}
    )
    assert run.status_code == 201, run.text
    return f"{team}/experiments/{experiment.json()['id']}/runs/{run.json()['id']}"


def _quota(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    resp = client.get(f"/api/v1/orgs/{tenant.org_id}/quotas", headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    items = resp.json()["quotas"] if isinstance(resp.json(), dict) else resp.json()
    return next(q for q in items if q["key"] == "storage_gb")


def test_files_are_checksummed_counted_and_removed_with_their_run(
    artifact_client: TestClient,
) -> None:
    client = artifact_client
    factory = Factory(client)
    tenant = factory.tenant("Acme", plan="starter")
    run = _run(client, tenant)
    body = Pattern(3 * CHUNK).read()
    put = client.put(
        f"{run}/artifact?path=model/weights.bin",
        headers={**tenant.headers, "content-type": "application/octet-stream"},
        content=body,
    )
    assert put.status_code == 201, put.text
    assert put.json() == {
        "path": put.json()["path"],
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    got = client.get(f"{run}/artifact?path=model/weights.bin", headers=tenant.headers)
    assert got.status_code == 200 and got.content == body
    assert got.headers["x-checksum-sha256"] == hashlib.sha256(body).hexdigest()
    listing = client.get(f"{run}/artifacts", headers=tenant.headers).json()
    assert listing == [{"path": "model", "is_dir": True, "size": None, "sha256": None}]
    assert Decimal(_quota(client, tenant)["used"]) == Decimal("0.003146")  # 3 MiB, in GB

    deleted = client.delete(run, headers=tenant.headers)
    assert deleted.status_code == 204, deleted.text
    assert Decimal(_quota(client, tenant)["used"]) == 0
    app: Any = client.app
    with pytest.raises(FileNotFoundError):
        list(app.state.artifacts.read(f"{tenant.org_id}/{tenant.team_id}/{put.json()['path']}"))


def test_the_storage_quota_refuses_what_does_not_fit(artifact_client: TestClient) -> None:
    client = artifact_client
    factory = Factory(client)
    tenant = factory.tenant("Acme")
    resp = client.put(
        f"/api/v1/operator/tenants/{tenant.org_id}/plan-overrides",
        headers=factory.operator().headers,
        json={"name": "tiny", "quotas": {"storage_gb": {"limit": "0.00003"}}},  # 30 kB
    )
    assert resp.status_code == 200, resp.text
    run = _run(client, tenant)
    headers = {**tenant.headers, "content-type": "application/octet-stream"}
    first = client.put(f"{run}/artifact?path=a.bin", headers=headers, content=b"x" * 20_000)
    assert first.status_code == 201, first.text
    second = client.put(f"{run}/artifact?path=b.bin", headers=headers, content=b"x" * 20_000)
    assert second.status_code == 402, second.text
    assert second.json()["code"] == "quota_exceeded" and second.json()["quota"] == "storage_gb"
    # replacing a file counts only the difference
    again = client.put(f"{run}/artifact?path=a.bin", headers=headers, content=b"y" * 25_000)
    assert again.status_code == 201, again.text
    listing = client.get(f"{run}/artifacts", headers=tenant.headers).json()
    assert [(f["path"], f["size"]) for f in listing] == [("a.bin", 25_000)]
