"""The dashboard under test: the real app served by uvicorn on a free loopback port (in a
thread, with the test's throwaway database and movable clock), and Debian's Chromium driven by
Playwright.

The browser is never downloaded: the tests launch the Chromium the machine has
(`apt-get install chromium`, which `.ci/run` does). Without it the browser tests skip, saying
so, unless CI is set: there a missing browser fails them.

Every page a test opens has its network requests routed: anything not on the loopback address
is aborted and remembered, and the test fails at its end if any was attempted (the dashboard
works on a machine without internet access)."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from conftest import PASSWORD

CHROMIUM = Path(os.environ.get("TENANTRY_TEST_CHROMIUM", "/usr/lib/chromium/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _browser_or_skip() -> None:
    if CHROMIUM.exists():
        return
    reason = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests")
    pytest.skip(reason)


@dataclass
class LiveServer:
    url: str
    app: FastAPI

    def http(self) -> httpx.Client:
        """A plain HTTP client of the server (as a script with curl would be)."""
        # Generous: on a loaded 2-core machine one answer can take seconds; speed is not tested.
        return httpx.Client(base_url=self.url, timeout=60)


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    """The test's app served by uvicorn on 127.0.0.1. The socket is bound and listening before
    the server's thread starts, so the first request queues on it: nothing waits or polls."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


# Generous: the machine running the suite may be busy (two cores, several suites at once).
ACTION_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module. Not per session: Playwright's synchronous API keeps an
    event loop running on the thread while it is open, and a later test in the same worker
    that calls `asyncio.run` would find it."""
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=ACTION_TIMEOUT_MS // 2)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@dataclass
class Offline:
    """Requests a page tried to make to anywhere but the loopback address (all aborted), and
    what went wrong in the page itself: script errors and Content-Security-Policy refusals."""

    attempted: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on(
            "console",
            lambda message: (
                self.page_errors.append(f"{message.text} at {message.location} on {page.url}")
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )


@pytest.fixture
def offline() -> Offline:
    return Offline()


@pytest.fixture
def new_context(
    browser: Any, live_server: LiveServer, offline: Offline
) -> Iterator[Callable[..., Any]]:
    """Makes browser contexts (separate cookie jars: separate people) whose every request off
    the loopback address is aborted and recorded."""
    made: list[Any] = []

    def route(route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK_HOSTS:
            route.continue_()
        else:
            offline.attempted.append(route.request.url)
            route.abort("internetdisconnected")

    def make(**options: Any) -> Any:
        options.setdefault("base_url", live_server.url)
        context = browser.new_context(**options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.route("**/*", route)
        context.on("page", offline.watch)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()
    assert offline.attempted == [], f"the dashboard reached off the machine: {offline.attempted}"
    assert offline.page_errors == [], f"errors in the dashboard's pages: {offline.page_errors}"


@pytest.fixture
def page(new_context: Callable[..., Any]) -> Any:
    return new_context().new_page()


@pytest.fixture
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots of the main pages are written (docs/screenshots/ keeps the best)."""
    folder = Path(os.environ.get("TENANTRY_SCREENSHOTS") or tmp_path_factory.getbasetemp())
    folder = folder / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@lru_cache(maxsize=1)
def _axe_source() -> str:
    return AXE.read_text()


def check_accessibility(page: Any, what: str) -> None:
    """axe-core on the page as shown: no serious or critical violation."""
    # Evaluated through the DevTools protocol, which the page's CSP does not govern (a script
    # tag would be refused, as it should be).
    page.evaluate(_axe_source())
    result = page.evaluate("async () => await axe.run(document)")
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    details = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in bad
    ]
    assert not bad, f"{what}: " + "; ".join(details)


def text_of(page: Any, selector: str) -> str:
    return re.sub(r"\s+", " ", page.locator(selector).inner_text()).strip()
