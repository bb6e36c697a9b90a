"""`tenantry compliance` against the real app (through the SDK): seed 001's line
`tenantry compliance report ORG --framework soc2 --period 2026-11 -o report.pdf` writes a PDF."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pypdf import PdfReader

from cli.test_cli import Cli, people  # noqa: F401 - the fixture
from conftest import Factory
from tenantry.kit.clock import FrozenClock


def test_a_month_of_soc2_as_pdf_and_json_from_the_cli(
    people: dict[str, Cli], factory: Factory, clock: FrozenClock, tmp_path: Path
) -> None:
    clock.set(datetime(2026, 12, 3, 9, tzinfo=UTC))
    acme = factory.tenant("Acme")
    ann = people["ann"]
    assert ann.login(acme.owner_email).exit_code == 0
    pdf = tmp_path / "report.pdf"
    said = ann.ok(
        "compliance", "report", acme.org_slug, "--framework", "soc2", "--period", "2026-11",
        "-o", str(pdf),
    )  # fmt: skip
    assert "SOC 2" in said and "audit chain: verified" in said and f"Wrote {pdf}" in said
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "Access review" in text and "Chain verification: VERIFIED" in text

    out = tmp_path / "report.json"
    made = ann.json(
        "compliance", "report", acme.org_slug, "--framework", "gdpr", "--from", "2026-11-01",
        "--to", "2026-11-30", "-o", str(out),
    )  # fmt: skip
    assert json.loads(out.read_text())["digest"] == made["digest"]
    assert made["period"]["label"] == "2026-11-01..2026-11-30"

    listed = ann.json("compliance", "list", acme.org_slug)
    assert [(r["framework"], r["period"]) for r in listed] == [
        ("soc2", "2026-11"), ("gdpr", "2026-11-01..2026-11-30")
    ]  # fmt: skip
    refused = ann.run("compliance", "report", acme.org_slug, "--framework", "soc2",
                      "--period", "2027-01")  # fmt: skip
    assert refused.exit_code == 1 and "period_in_future" in refused.stderr
    bad_day = ann.run("compliance", "report", acme.org_slug, "--framework", "soc2",
                      "--from", "yesterday", "--to", "2026-11-02")  # fmt: skip
    assert bad_day.exit_code != 0 and "--from is a day" in bad_day.stderr

    scheduled = ann.json("compliance", "schedule", acme.org_slug, "--framework", "soc2",
                         "--email", "ciso@acme.example")  # fmt: skip
    assert scheduled["frameworks"] == ["soc2"] and scheduled["recipients"] == ["ciso@acme.example"]
    assert "monthly: soc2" in ann.ok("compliance", "schedule", acme.org_slug)
    assert ann.json("compliance", "schedule", acme.org_slug, "--off")["frameworks"] == []
