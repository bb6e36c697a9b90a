"""Compliance reports in the browser: none yet, last month's SOC 2 report generated from the
form, downloaded as PDF (which parses) and JSON, a bad month refused beside its field, the
monthly schedule set; a member without `audit:read` is refused the page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from pypdf import PdfReader

from conftest import Factory, bearer
from tenantry.kit.clock import FrozenClock
from web.conftest import LiveServer, check_accessibility, sign_in


def test_generate_download_and_schedule_compliance_reports(
    new_context: Callable[..., Any], live_server: LiveServer, factory: Factory,
    clock: FrozenClock, shots: Any, tmp_path: Path,
) -> None:  # fmt: skip
    clock.set(datetime(2026, 12, 2, 9, tzinfo=UTC))
    tenant = factory.tenant("Acme Labs")
    page = new_context(accept_downloads=True).new_page()
    sign_in(page, tenant.owner_email)
    page.get_by_role("link", name="Compliance reports").click()
    expect(page.locator(".empty-title")).to_have_text("No reports yet")
    expect(page.get_by_label("Month", exact=True)).to_have_value(
        "2026-11"
    )  # last month, by default
    check_accessibility(page, "Compliance reports, none yet")

    page.get_by_label("Framework").select_option(label="SOC 2 (Trust Services Criteria)")
    page.get_by_role("button", name="Generate report").click()
    expect(page.locator(".notice")).to_contain_text("SOC 2 (Trust Services Criteria), 2026-11")
    row = page.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("2026-11")
    expect(row).to_contain_text("on demand")
    page.screenshot(path=str(shots / "compliance-reports.png"), full_page=True)

    with page.expect_download() as pdf_download:
        row.get_by_role("link", name="PDF").click()
    pdf = tmp_path / "report.pdf"
    pdf_download.value.save_as(pdf)
    text = " ".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "Access review" in text and "Chain verification: VERIFIED" in text
    with page.expect_download() as json_download:
        row.get_by_role("link", name="JSON").click()
    saved = tmp_path / "report.json"
    json_download.value.save_as(saved)
    report = json.loads(saved.read_text())
    assert report["framework"] == "soc2" and report["period"]["label"] == "2026-11"

    page.get_by_label("Month", exact=True).fill("2027-01")  # not begun
    page.get_by_role("button", name="Generate report").click()
    expect(page.locator(".form-error, .error").first).to_contain_text("not begun")
    expect(page.locator("tbody tr")).to_have_count(1)

    page.get_by_label("GDPR (Regulation (EU) 2016/679)").check()
    page.get_by_label("Email to").fill("dpo@acme.example, ciso@acme.example")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.locator(".notice")).to_have_text("Schedule saved.")
    expect(page.get_by_text("Next run: 2027-01-01")).to_be_visible()
    check_accessibility(page, "Compliance reports, one report and a schedule")

    with live_server.http() as api:
        shown = api.get(f"/api/v1/orgs/{tenant.org_id}/compliance/schedule",
                        headers=tenant.headers).json()  # fmt: skip
        _, member = factory.member(tenant)
        listed = api.get(f"/api/v1/orgs/{tenant.org_id}/compliance/reports",
                         headers=bearer(member))  # fmt: skip
    assert shown["frameworks"] == ["gdpr"]
    assert shown["recipients"] == ["ciso@acme.example", "dpo@acme.example"]
    assert listed.status_code == 403
