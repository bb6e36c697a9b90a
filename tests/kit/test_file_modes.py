"""The data directory is 0700 and the embedded database, its WAL and shared-memory files and the
generated secret are 0600: when they are made, and again at every start of an older install."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tenantry import runtime
from tenantry.app import create_app
from tenantry.config import Settings
from tenantry.kit.db import Database
from tenantry.kit.files import secure_install, sqlite_path


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def _usual_umask() -> Iterator[None]:
    """The umask most machines run with, under which files come out world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def embedded(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", password_time_cost=1, password_memory_cost_kib=1024)


def test_a_new_install_is_private_from_the_start(tmp_path: Path) -> None:
    settings = embedded(tmp_path)
    runtime.migrate(settings)
    settings.server_secret()
    data = settings.data_dir
    assert mode(data) == 0o700
    assert mode(data / "tenantry.db") == 0o600
    assert mode(data / "secret_key") == 0o600

    db = Database(settings.resolved_database_url())
    try:
        with db.session(write=True) as session:
            session.execute(text("CREATE TABLE scratch (x INTEGER)"))
            session.commit()
        # The WAL and shared-memory files exist while a connection is open; SQLite made them
        # with the database file's mode.
        assert mode(data / "tenantry.db-wal") == 0o600
        assert mode(data / "tenantry.db-shm") == 0o600
    finally:
        db.dispose()


def test_a_database_elsewhere_is_private_and_its_new_directory_too(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "deep" / "t.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.session(write=True) as session:
            session.execute(text("SELECT 1"))
    finally:
        db.dispose()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def _older_install(tmp_path: Path) -> Settings:
    """An install made before file modes were set: everything readable by everyone."""
    settings = embedded(tmp_path)
    data = settings.data_dir
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    for name in ("tenantry.db", "tenantry.db-wal", "tenantry.db-shm", "secret_key"):
        (data / name).write_bytes(b"" if name != "secret_key" else b"s" * 64)
        os.chmod(data / name, 0o644)
    return settings


def test_a_start_fixes_an_older_install_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _older_install(tmp_path)
    data = settings.data_dir
    with caplog.at_level(logging.WARNING, logger="tenantry"):
        create_app(settings).state.db.dispose()
    assert mode(data) == 0o700
    for name in ("tenantry.db", "tenantry.db-wal", "tenantry.db-shm", "secret_key"):
        assert mode(data / name) == 0o600, name
    warnings = [r.getMessage() for r in caplog.records if "file modes tightened" in r.getMessage()]
    assert len(warnings) == 1
    assert f"{data} 0755→0700" in warnings[0]
    assert f"{data / 'tenantry.db'} 0644→0600" in warnings[0]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tenantry"):
        create_app(settings).state.db.dispose()  # the next start: nothing left to say
    assert not [r for r in caplog.records if "file modes tightened" in r.getMessage()]


def test_migrate_and_the_worker_fix_an_older_install_too(tmp_path: Path) -> None:
    from tenantry.worker import run

    settings = _older_install(tmp_path)
    (settings.data_dir / "tenantry.db").unlink()
    runtime.migrate(settings)
    assert mode(settings.data_dir) == 0o700
    assert mode(settings.data_dir / "secret_key") == 0o600

    os.chmod(settings.data_dir, 0o755)
    os.chmod(settings.data_dir / "tenantry.db", 0o644)
    assert run(settings, interval=0, passes=1) == 1
    assert mode(settings.data_dir) == 0o700
    assert mode(settings.data_dir / "tenantry.db") == 0o600


def test_a_stricter_mode_chosen_by_the_owner_stays(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o500)
    try:
        assert secure_install(data, "postgresql://db.example/tenantry") == []
        assert mode(data) == 0o500
    finally:
        os.chmod(data, 0o700)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///relative/t.db", Path("relative/t.db")),
        ("sqlite:////abs/t.db", Path("/abs/t.db")),
        ("sqlite:////abs/t.db?timeout=5", Path("/abs/t.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_the_file_of_a_database_url(url: str, expected: Path | None) -> None:
    assert sqlite_path(url) == expected
