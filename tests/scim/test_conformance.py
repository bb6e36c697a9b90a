"""scim2-tester's checks of the SCIM service, over HTTP against a live server: discovery,
creation, reading, replacement, PATCH add/replace/remove of every attribute, deletion, and the
404 of an unknown URL. Every check it makes must pass."""

from __future__ import annotations

from collections import Counter

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from scim.conftest import Directory, LiveServer


def test_scim2_tester_passes_every_check(live_server: LiveServer, directory: Directory) -> None:
    with httpx2.Client(
        base_url=f"{live_server.url}/scim/v2",
        headers={"Authorization": f"Bearer {directory.token}"},
        timeout=30,
    ) as http:
        client = SyncSCIMClient(http)
        results = check_server(client)
    statuses = Counter(r.status for r in results)
    print(f"scim2-tester: {len(results)} checks, {dict(statuses)}")
    failed = [f"{r.title}: {r.reason}" for r in results if r.status == Status.ERROR]
    assert not failed, "\n".join(failed)
    assert statuses[Status.SUCCESS] >= 50, statuses
