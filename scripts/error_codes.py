"""Print every problem `code` the API can answer with, as a Markdown table, found in the source.

    python scripts/error_codes.py

Reads each `SomeProblem("detail", code="...")` under src/tenantry (the status comes from the
Problem class), the classes' default codes, and the codes the app's own handlers write. A call
that passes on a code held in a variable is skipped: that code is listed where it is spelled.
docs/api.md pastes this output.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tenantry.kit import errors

SRC = Path(__file__).resolve().parent.parent / "src" / "tenantry"

# Written by the exception handlers in app.py and the body layer (http/body.py), or raised with a
# detail made as it goes: their example detail is this one.
HANDLER_CODES: dict[str, tuple[int, str]] = {
    "bad_request": (400, "The request is malformed"),
    "malformed_json": (
        400,
        "The request body is not valid JSON, not UTF-8, or starts with a byte order mark",
    ),
    "unsupported_media_type": (
        415,
        "The request body is text/plain; send it as JSON with `Content-Type: application/json`",
    ),
    "validation_error": (422, "A field is missing, null, of the wrong type, too long or unknown"),
    "not_found": (404, "No such route, or the resource is not there or not yours"),
    "method_not_allowed": (405, "The route exists but not with this method"),
    "internal_error": (500, "An unexpected error; logged with the request id"),
}


def problem_classes() -> dict[str, type[errors.Problem]]:
    found: dict[str, type[errors.Problem]] = {}
    pending = [errors.Problem]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def _placeholder(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return "{" + node.id + "}"
    if isinstance(node, ast.Attribute):
        return "{" + node.attr + "}"
    return "{…}"


def _text(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append(_placeholder(value.value))
        return "".join(parts)
    return ""


Codes = dict[str, tuple[set[int], str]]


def _note(codes: Codes, code: str, status: int, detail: str) -> None:
    statuses, known = codes.setdefault(code, (set(), ""))
    statuses.add(status)
    if detail and not known:
        codes[code] = (statuses, detail)


def raised_codes(classes: dict[str, type[errors.Problem]]) -> Codes:
    codes: Codes = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            cls = classes.get(node.func.id)
            if cls is None:
                continue
            code = next((_text(k.value) for k in node.keywords if k.arg == "code"), cls.code)
            if not code:
                continue  # a code passed on from a variable
            detail = _text(node.args[0]) if node.args else ""
            _note(codes, code, cls.status, detail)
    return codes


def main() -> None:
    classes = problem_classes()
    codes = raised_codes(classes)
    for name, cls in classes.items():
        if name != "Problem" and cls.code not in codes:
            _note(codes, cls.code, cls.status, cls.title)
    for code, (status, detail) in HANDLER_CODES.items():
        _note(codes, code, status, detail)
        codes[code] = (codes[code][0], detail)
    print("| status | code | example detail |")
    print("|---|---|---|")
    for code, (statuses, detail) in sorted(codes.items(), key=lambda kv: (min(kv[1][0]), kv[0])):
        status = ", ".join(map(str, sorted(statuses)))
        print(f"| {status} | `{code}` | {detail.replace('|', '/')} |")


if __name__ == "__main__":
    main()
