"""A compliance report as an A4 PDF, drawn with fpdf2 the way invoices are (`billing.render`:
the built-in Helvetica, text passed through `pdf_text`). Drawn from the report's stored JSON
only, so the PDF says what the signed JSON says; its creation date is the report's generation
time, so one report gives the same bytes every time."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from fpdf import FPDF, FontFace
from fpdf.enums import Align, TableBordersLayout, XPos, YPos

from tenantry.billing.render import PDF_ENCODING, pdf_text
from tenantry.governance.compliance import frameworks as fw

PRODUCER: Final = "Tenantry"
GREY: Final = (89, 99, 110)
MAX_ROWS: Final = 500  # per table; the JSON holds every row


class _ReportPDF(FPDF):
    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report = report

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("helvetica", size=8)
        self.set_text_color(*GREY)
        left = f"Compliance report {self.report['id']} - SHA-256 {self.report['digest'][:16]}..."
        self.cell(0, 5, pdf_text(left), align=Align.L)
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align=Align.R)


def report_pdf(report: dict[str, Any]) -> bytes:
    """`report` is `reports.report_out`'s dict: the stored body with digest and signature."""
    pdf = _ReportPDF(report)
    pdf.core_fonts_encoding = PDF_ENCODING
    pdf.set_creation_date(datetime.fromisoformat(report["generated_at"].replace("Z", "+00:00")))
    title = f"{report['framework_title']} compliance report, {report['period']['label']}"
    pdf.set_title(pdf_text(title))
    pdf.set_author(PRODUCER)
    pdf.set_subject(pdf_text(f"{title} for {report['org']['name']}"))
    pdf.set_creator(PRODUCER)
    pdf.set_producer(PRODUCER)
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    _header(pdf, report)
    _statements(pdf, "What this report proves", report["proves"])
    _statements(pdf, "What it does not prove", report["does_not_prove"])
    for section in report["sections"]:
        _section(pdf, section)
    return bytes(pdf.output())


def _heading(pdf: FPDF, text: str, size: int = 12) -> None:
    pdf.ln(3)
    pdf.set_font("helvetica", "B", size)
    pdf.multi_cell(0, 6, pdf_text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=9)


def _note(pdf: FPDF, text: str) -> None:
    pdf.set_font("helvetica", size=9)
    pdf.set_text_color(*GREY)
    pdf.multi_cell(0, 4.5, pdf_text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)


def _header(pdf: FPDF, report: dict[str, Any]) -> None:
    pdf.set_font("helvetica", "B", 18)
    pdf.cell(0, 9, "Compliance report", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", "B", 12)
    pdf.multi_cell(0, 6, pdf_text(report["framework_title"]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    org = report["org"]
    facts = [
        ("Organization", f"{org['name']} ({org['slug']}, {org['id']})"),
        ("Period", f"{report['period']['label']}: {report['period']['start']} to "
                   f"{report['period']['end']} (end excluded)"),
        ("Generated", f"{report['generated_at']} ({report['trigger']})"),
        ("Report", report["id"]),
        ("SHA-256", report["digest"]),
        ("Signature", f"{report['signature_algorithm']} {report['signature']}"),
    ]  # fmt: skip
    for label, value in facts:
        pdf.set_font("helvetica", size=9)
        pdf.set_text_color(*GREY)
        pdf.cell(28, 5, pdf_text(label))
        pdf.set_text_color(0)
        pdf.multi_cell(0, 5, pdf_text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    pdf.set_line_width(0.5)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.set_line_width(0.2)


def _statements(pdf: FPDF, title: str, lines: list[str]) -> None:
    _heading(pdf, title, 11)
    for line in lines:
        pdf.multi_cell(0, 4.5, pdf_text(f"- {line}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _table(pdf: FPDF, headings: list[str], rows: list[list[str]], empty: str) -> None:
    if not rows:
        _note(pdf, empty)
        return
    pdf.set_font("helvetica", size=8)
    with pdf.table(
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=FontFace(emphasis="BOLD", color=GREY),
        line_height=4.5,
        padding=(1, 1),
        width=pdf.epw,
    ) as table:
        table.row([pdf_text(h) for h in headings])
        for row in rows[:MAX_ROWS]:
            table.row([pdf_text(cell) for cell in row])
    if len(rows) > MAX_ROWS:
        _note(pdf, f"{len(rows) - MAX_ROWS} more rows in the JSON report.")
    pdf.set_font("helvetica", size=9)


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _event_row(e: dict[str, Any]) -> list[str]:
    actor = f"{e['actor_type']} {_s(e['actor_id'])}"
    target = f"{_s(e['target_type'])} {_s(e['target_id'])}"
    return [_s(e["seq"]), _s(e["at"]), e["action"], actor, target, e["result"]]


def _events(pdf: FPDF, rows: list[dict[str, Any]], empty: str) -> None:
    headings = ["Seq", "When", "Action", "Actor", "Target", "Result"]
    _table(pdf, headings, [_event_row(e) for e in rows], empty)


def _section(pdf: FPDF, section: dict[str, Any]) -> None:
    _heading(pdf, section["title"], 13)
    _note(pdf, "Controls: " + ", ".join(section["controls"]))
    key = section["key"]
    if key == fw.ACCESS_REVIEW:
        _heading(pdf, f"Organization members as of {section['as_of']}", 10)
        _table(pdf, ["User", "Email", "Role", "Since"],
               [[m["user_id"], m["email"], m["role"], _s(m["since"])] for m in section["members"]],
               "No members.")  # fmt: skip
        _heading(pdf, "Team roles", 10)
        _table(pdf, ["Team", "User", "Role", "Since"],
               [[t["team"], t["user_id"], t["role"], _s(t["since"])]
                for t in section["team_members"]],
               "No team roles.")  # fmt: skip
        _heading(pdf, "Grants in force", 10)
        _table(pdf, ["Grant", "Subject", "Resource", "Role or permissions", "Expires"],
               [[g["id"], g["subject"], g["resource"],
                 _s(g["role"] or ", ".join(g["permissions"] or [])), _s(g["expires_at"])]
                for g in section["grants"]],
               "No grants.")  # fmt: skip
        _heading(pdf, "Changes of access in the period", 10)
        _events(pdf, section["changes"], "No change of access was recorded in the period.")
    elif key == fw.PRIVILEGED_ACTIONS:
        _events(pdf, section["actions"], "No privileged action was recorded in the period.")
    elif key == fw.POLICY_ENFORCEMENT:
        _heading(pdf, "Violations", 10)
        _table(pdf, ["When", "Policy", "Kind", "Action", "Model", "User"],
               [[v["at"], f"{v['policy_id']} v{v['policy_version']}", v["kind"], v["action"],
                 _s(v["model"]), _s(v["user_id"] or v["api_key_id"])]
                for v in section["violations"]],
               "No policy violation was recorded in the period.")  # fmt: skip
        _heading(pdf, "Approval requests", 10)
        _table(pdf, ["Requested", "Request", "Status", "Decided by", "Decided"],
               [[a["requested_at"], a["id"], a["status"], _s(a["decided_by"]),
                 _s(a["decided_at"])] for a in section["approvals"]],
               "No approval was requested in the period.")  # fmt: skip
    elif key == fw.AUDIT_INTEGRITY:
        _integrity(pdf, section)
    elif key == fw.RETENTION:
        _note(pdf, "")
        pdf.multi_cell(
            0, 4.5,
            pdf_text(f"Audit events are kept {section['audit_retention_days']} days (set by the "
                     f"{section['audit_retention_source']}; plan {section['plan']})."),
            new_x=XPos.LMARGIN, new_y=YPos.NEXT,
        )  # fmt: skip
        settings = [("organization", section["organization"]), *sorted(section["teams"].items())]
        _table(pdf, ["Scope", "Classification and compliance settings"],
               [[scope, _s(values) if values else "none set"] for scope, values in settings],
               "No settings.")  # fmt: skip
    elif key == fw.DATA_SUBJECT_REQUESTS:
        rows = [
            [kind, r["at"], r["subject_id"], _s(r["requested_by"])]
            for kind, listed in (("export", section["exports"]), ("erasure", section["erasures"]))
            for r in listed
        ]
        _table(pdf, ["Request", "When", "Subject", "By"], rows,
               "No data-subject request was answered in the period.")  # fmt: skip


def _integrity(pdf: FPDF, section: dict[str, Any]) -> None:
    verdict = "VERIFIED" if section["verified"] else "FAILED"
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(0, 6, f"Chain verification: {verdict}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=9)
    lines = [
        f"Events checked: {section['events_checked']} (seq {_s(section['first_seq'])} to "
        f"{section['last_seq']}, head {section['head_seq']})",
        f"Signed checkpoints checked: {section['checkpoints_checked']}",
    ]
    fault = section["fault"]
    if fault:
        lines.append(f"Fault at seq {fault['seq']}: {fault['kind']} - {fault['detail']}")
    checkpoint = section["checkpoint"]
    if checkpoint:
        lines += [
            f"Signed checkpoint {checkpoint['id']} at seq {checkpoint['seq']}, "
            f"{checkpoint['created_at']} ({checkpoint['covers']})",
            f"Head hash: {checkpoint['hash']}",
            f"Signature (Ed25519): {checkpoint['signature']}",
        ]
    for line in lines:
        pdf.multi_cell(0, 4.5, pdf_text(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _note(pdf, "Public key:\n" + section["public_key"]["public_key_pem"])
