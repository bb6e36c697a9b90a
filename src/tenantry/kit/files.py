"""File modes of what the service keeps on disk: the data directory (0700), the embedded
database with its WAL and shared-memory files and the generated secret (0600).

Nothing else on the machine should read them: the database holds password hashes, personal
details and the audit trail, the secret signs every access token. They are made with these modes,
and every start tightens them again, so an install made before (when the database came out
world-readable under the usual umask of 022) is fixed by its next start and says so once in the
log.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("tenantry")

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600
# Files SQLite keeps beside a database: it makes each with the database file's own mode, so a
# database created 0600 has private companions from the start.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for another database, or one in memory)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1].split("?", 1)[0] if ":///" in url else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def tighten(path: Path, mode: int) -> tuple[int, int] | None:
    """Take every bit beyond `mode` off `path`: (old, new) when that changed something, None
    when it was already that private or does not exist. A stricter mode the owner chose stays."""
    try:
        current = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    wanted = current & mode
    if wanted == current:
        return None
    os.chmod(path, wanted)
    return current, wanted


def private_directory(path: Path) -> None:
    """Create `path` (and any missing parents) 0700; an existing directory is left as it is,
    since it may be one the service does not own (`tighten` it when it is the data dir)."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIRECTORY)


def create_sqlite_file(path: Path) -> None:
    """Create an empty database file 0600 before SQLite opens it (SQLite reads an empty file as
    an empty database), so it never exists world-readable, not even for a moment. Its directory
    is created 0700 when missing."""
    if path.exists():
        return
    private_directory(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return  # another process made it at the same moment, the same way
    os.close(fd)


def secure_install(data_dir: Path, database_url: str) -> list[str]:
    """Tighten the data directory, the generated secret and the embedded database's files; log
    one warning naming whatever had to change. Returns those changes (`path old→new`)."""
    changes: list[str] = []

    def fix(path: Path, mode: int) -> None:
        changed = tighten(path, mode)
        if changed is not None:
            changes.append(f"{path} {changed[0]:04o}→{changed[1]:04o}")

    fix(data_dir, PRIVATE_DIRECTORY)
    fix(data_dir / "secret_key", PRIVATE_FILE)
    database = sqlite_path(database_url)
    if database is not None:
        create_sqlite_file(database)
        for suffix in ("", *SQLITE_COMPANIONS):
            fix(database.with_name(database.name + suffix), PRIVATE_FILE)
    if changes:
        log.warning(
            "file modes tightened (readable by other users of this machine before): %s",
            ", ".join(changes),
        )
    return changes
