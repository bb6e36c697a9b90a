"""Where the CLI keeps its login: one JSON file, readable only by its owner.

The file lives in the user's config directory (platformdirs), or in `$TENANTRY_CONFIG_DIR` when
that is set. It holds the server URL and the tokens of the last `tenantry login`; the access token
is short-lived and the refresh token rotates, so the file is rewritten whenever they change.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenantry.client.models import Tokens

CONFIG_DIR_ENV = "TENANTRY_CONFIG_DIR"
CONFIG_FILE_NAME = "config.json"


class ConfigError(Exception):
    """The config file exists but cannot be used."""


@dataclass(frozen=True)
class StoredLogin:
    server: str | None = None
    email: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: str | None = None

    def with_tokens(self, tokens: Tokens) -> StoredLogin:
        return replace(
            self,
            email=tokens.user.email,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at.isoformat(),
        )

    def signed_out(self) -> StoredLogin:
        return replace(self, access_token=None, refresh_token=None, expires_at=None)


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    # Here rather than at the top: every command imports this module, few need the default.
    from platformdirs import user_config_dir

    return Path(user_config_dir("tenantry"))


def config_path() -> Path:
    return config_dir() / CONFIG_FILE_NAME


def load() -> StoredLogin:
    path = config_path()
    try:
        raw: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return StoredLogin()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; delete it and sign in again") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a JSON object; delete it and sign in again")
    known = {f.name for f in fields(StoredLogin)}
    return StoredLogin(**{k: v for k, v in raw.items() if k in known and isinstance(v, str)})


def save(login: StoredLogin) -> Path:
    """Write the file atomically, created with mode 0600 so the tokens are never readable by
    others, not even for the moment between creating and chmod-ing it."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp creates the file with mode 0600; replacing keeps a reader from seeing half a file.
    fd, temp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({k: v for k, v in asdict(login).items() if v is not None}, handle, indent=2)
            handle.write("\n")
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
