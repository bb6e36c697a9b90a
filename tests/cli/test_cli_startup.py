"""What the `tenantry` command imports before it does anything (see "Start-up" in docs/cli.md).

Only `serve`, `migrate` and `worker` may load the server stack, and only when they run; `--help`
loads no SDK either. Each case runs the CLI in a fresh interpreter and reads back its
`sys.modules`: which modules were imported is a fact, unlike a start-up time, so this holds on a
slow or busy machine as well as on a fast one.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenantry.cli.main import GROUPS, app
from tenantry.client._transport import tls_verify

# The server: the app and its database layer, and the frameworks under them.
SERVER_MODULES = (
    "tenantry.app",
    "tenantry.runtime",
    "tenantry.worker",
    "tenantry.kit.db",
    "sqlalchemy",
    "fastapi",
    "starlette",
    "alembic",
    "uvicorn",
)
# The SDK's clients, models and HTTP stack: for commands that talk to a server, not for help.
SDK_MODULES = ("tenantry.client.sync", "tenantry.client.models", "httpx", "httpcore")
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there

# Runs `tenantry ARGS...` as the console script does, then writes the names of every module
# imported by then to MODULES_FILE, whatever the command's exit.
CHILD = """
import json, sys
modules_file, *args = sys.argv[1:]
sys.argv = ["tenantry", *args]
try:
    from tenantry.cli.main import run
    run()
finally:
    with open(modules_file, "w") as out:
        json.dump(sorted(sys.modules), out)
"""


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env.update(
        TENANTRY_CONFIG_DIR=str(tmp_path / "config"),
        TENANTRY_SERVER=UNREACHABLE,
        TENANTRY_TOKEN="tnt_not_a_real_token",  # signed in, so the command gets as far as it can
    )
    modules_file = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(modules_file), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, set(json.loads(modules_file.read_text()))


def _loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_help_imports_neither_the_server_nor_the_sdk(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "org" in done.stdout and "billing" in done.stdout
    assert _loaded(modules, SERVER_MODULES) == []
    assert _loaded(modules, SDK_MODULES) == []


def test_a_client_command_imports_the_sdk_but_not_the_server(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, "org", "list", "--json")
    assert done.returncode == 4, done.stderr  # it did try: the server cannot be reached
    assert done.stderr.startswith(f"error: cannot reach {UNREACHABLE}")
    assert done.stdout == ""
    assert "tenantry.client.sync" in modules
    assert _loaded(modules, SERVER_MODULES) == []


def test_the_offline_commands_import_their_own_logic_only(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, "billing", "usage-cost", "--compute-hours", "10", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"]
    assert "tenantry.billing.rating" in modules
    assert _loaded(modules, SERVER_MODULES) == []
    assert _loaded(modules, SDK_MODULES) == []

    export = tmp_path / "export.ndjson"
    export.write_text("{}\n")
    done, modules = _run(tmp_path, "audit", "verify", "--file", str(export))
    assert done.returncode == 5, done.stderr  # checked, and found not to be an export
    assert "tenantry.audit.offline" in modules
    assert _loaded(modules, SERVER_MODULES) == []
    assert _loaded(modules, SDK_MODULES) == []


@pytest.mark.parametrize("group", list(GROUPS))
def test_each_command_group_is_listed_and_builds_on_demand(group: str) -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0
    assert f" {group} " in listing.output
    result = runner.invoke(app, [group, "--help"], prog_name="tenantry")
    assert result.exit_code == 0, result.output
    # A group of commands, or (`costs`) one command taking its arguments after the name.
    assert f"tenantry {group} [OPTIONS] " in result.output


def test_a_mistyped_command_is_still_matched_against_every_group() -> None:
    result = CliRunner().invoke(app, ["ratelimits"])
    assert result.exit_code == 2
    assert "Did you mean 'ratelimit'?" in result.output


def test_only_a_client_that_cannot_use_tls_goes_without_the_trust_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    plain = tls_verify("http://127.0.0.1:8000")
    assert isinstance(plain, ssl.SSLContext)
    # Not unchecked but trusting nothing: a TLS handshake would fail.
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
    assert tls_verify("https://tenantry.example") is True
    monkeypatch.setenv("HTTP_PROXY", "https://proxy.example:3128")  # reached over TLS
    assert tls_verify("http://127.0.0.1:8000") is True
