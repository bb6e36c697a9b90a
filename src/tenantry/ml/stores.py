"""Where artifact bytes live: a directory on this machine (the default) or an S3-compatible
bucket. Both stream: a write reads its source a chunk at a time, a read yields chunks, so a
file of any size passes through a bounded amount of memory.

Keys are `<org>/<team>/<path>`; a write goes to a staging key first and is moved into place
only once the database has taken it (`promote`), so a refused or failed upload never replaces
what was there.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from tenantry.config import Settings

CHUNK = 1024 * 1024
STAGING = ".staging"


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ArtifactStore(Protocol):
    kind: str

    def stage(self, source: Readable) -> str:
        """Write `source` to a new staging key (returned)."""

    def promote(self, staged: str, key: str) -> None:
        """Move a staged write to `key`, replacing what was there."""

    def discard(self, staged: str) -> None: ...

    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes a chunk at a time; FileNotFoundError if there is none."""

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix` (a folder) or at it (a file)."""


def _safe(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\x00" in key:
        raise ValueError(f"invalid artifact key {key!r}")
    return key


class LocalStore:
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _safe(key)

    def stage(self, source: Readable) -> str:
        staged = f"{STAGING}/{uuid.uuid4().hex}"
        path = self._path(staged)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(path, "wb") as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
        return staged

    def promote(self, staged: str, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(self._path(staged), target)

    def discard(self, staged: str) -> None:
        self._path(staged).unlink(missing_ok=True)

    def read(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        handle = open(path, "rb")  # noqa: SIM115 - closed by the generator, which may outlive this frame

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return chunks()

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class S3Store:
    """An S3-compatible bucket through boto3; uploads are multipart, a part at a time."""

    kind = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        # Two parts of 8 MB in flight at most: the memory an upload holds, whatever its size.
        self.transfer = TransferConfig(
            multipart_threshold=8 * CHUNK, multipart_chunksize=8 * CHUNK, max_concurrency=2
        )

    def _key(self, key: str) -> str:
        return self.prefix + _safe(key)

    def stage(self, source: Readable) -> str:
        staged = f"{STAGING}/{uuid.uuid4().hex}"
        self.client.upload_fileobj(source, self.bucket, self._key(staged), Config=self.transfer)
        return staged

    def promote(self, staged: str, key: str) -> None:
        self.client.copy(
            {"Bucket": self.bucket, "Key": self._key(staged)},
            self.bucket,
            self._key(key),
            Config=self.transfer,
        )
        self.discard(staged)

    def discard(self, staged: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(staged))

    def read(self, key: str) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return chunks()

    def delete_prefix(self, prefix: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        exact = self._key(prefix)
        for page in paginator.paginate(Bucket=self.bucket, Prefix=exact):
            keys = [
                {"Key": item["Key"]}
                for item in page.get("Contents", [])
                if item["Key"] == exact or item["Key"].startswith(exact + "/")
            ]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


def store_from_settings(settings: Settings) -> ArtifactStore:
    if settings.artifact_store == "s3":
        assert settings.artifact_s3_bucket is not None  # checked by Settings
        return S3Store(
            settings.artifact_s3_bucket,
            prefix=settings.artifact_s3_prefix,
            endpoint_url=settings.artifact_s3_endpoint_url,
            region=settings.artifact_s3_region,
        )
    return LocalStore(settings.artifact_dir or settings.data_dir / "artifacts")
