"""Policy rules as data: the fields a condition may read, the operators, the actions, and the
checks a policy passes when it is saved (a condition that cannot be evaluated is refused then,
never found at admission). Pure: no database, no clock.

A rule's `conditions` is a list (all must hold) whose items are a condition `{field, operator,
value}` or a combinator `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from tenantry.kit.errors import Unprocessable

NUMBER: Final = "number"
STRING: Final = "string"

# What admission gives every field: the request itself, the member's live aggregates (from
# spend's rollups) and the time in the org's time zone.
FIELDS: Final[dict[str, str]] = {
    "model": STRING,
    "provider": STRING,
    "action": STRING,
    "estimated_cost": NUMBER,
    "estimated_tokens": NUMBER,
    "daily_cost_per_user": NUMBER,
    "monthly_team_cost": NUMBER,
    "requests_last_hour": NUMBER,
    "data_classification": STRING,
    "region": STRING,
    "role": STRING,
    "api_key": STRING,
    "user": STRING,
    "hour_of_day": NUMBER,
    "weekday": STRING,
}
AGGREGATES: Final = frozenset({"daily_cost_per_user", "monthly_team_cost", "requests_last_hour"})
TAG_PREFIX: Final = "tags."
OPERATORS: Final[dict[str, frozenset[str]]] = {
    "equals": frozenset({NUMBER, STRING}),
    "not_equals": frozenset({NUMBER, STRING}),
    "greater_than": frozenset({NUMBER}),
    "less_than": frozenset({NUMBER}),
    "in": frozenset({NUMBER, STRING}),
    "not_in": frozenset({NUMBER, STRING}),
    "contains": frozenset({STRING}),
    "matches": frozenset({STRING}),
}
ACTIONS: Final = ("allow", "deny", "require_approval", "log", "notify")
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_PATTERN: Final = 200
MAX_MATCHED_TEXT: Final = 1000  # a value longer than this never matches a pattern
MAX_DEPTH: Final = 8
MAX_CONDITIONS: Final = 100
MAX_LIST: Final = 500
# A quantified group that is itself quantified ((a+)+, (a*)*): the shape of catastrophic
# backtracking, refused at save.
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _refuse(detail: str, code: str = "invalid_rule") -> Unprocessable:
    return Unprocessable(detail, code=code)


def field_type(name: str) -> str | None:
    if name.startswith(TAG_PREFIX) and 0 < len(name) - len(TAG_PREFIX) <= 64:
        return STRING
    return FIELDS.get(name)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    if isinstance(value, str):
        return None  # a number is sent as a JSON number
    try:
        found = Decimal(str(value))
    except InvalidOperation:
        return None
    return found if found.is_finite() else None


def _scalar_ok(kind: str, value: Any) -> bool:
    if kind == NUMBER:
        return _number(value) is not None
    return isinstance(value, str) and len(value) <= MAX_MATCHED_TEXT


def _check_pattern(pattern: str, where: str) -> None:
    if len(pattern) > MAX_PATTERN:
        raise _refuse(f"{where}: a pattern is at most {MAX_PATTERN} characters", "invalid_pattern")
    if _NESTED_QUANTIFIER.search(pattern):
        raise _refuse(f"{where}: nested quantifiers are not allowed", "invalid_pattern")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise _refuse(f"{where}: invalid pattern ({exc})", "invalid_pattern") from None


def check_condition(node: Any, where: str = "conditions", depth: int = 0) -> int:
    """Refuse a condition (or combinator) that cannot be evaluated; how many conditions it
    holds."""
    if depth > MAX_DEPTH:
        raise _refuse(f"{where}: conditions nest at most {MAX_DEPTH} deep")
    if not isinstance(node, Mapping):
        raise _refuse(f"{where}: a condition is an object")
    combinators = [k for k in ("all", "any", "not") if k in node]
    if combinators:
        if len(node) != 1:
            raise _refuse(f"{where}: a combinator object holds only its one key")
        key = combinators[0]
        inner = node[key]
        if key == "not":
            return check_condition(inner, f"{where}.not", depth + 1)
        if not isinstance(inner, list) or not inner:
            raise _refuse(f"{where}.{key}: a non-empty list of conditions")
        return sum(
            check_condition(c, f"{where}.{key}[{i}]", depth + 1) for i, c in enumerate(inner)
        )
    if set(node) != {"field", "operator", "value"}:
        raise _refuse(f"{where}: a condition has exactly field, operator and value")
    name, operator, value = node["field"], node["operator"], node["value"]
    kind = field_type(name) if isinstance(name, str) else None
    if kind is None:
        raise _refuse(f"{where}: unknown field {name!r}", "unknown_field")
    if operator not in OPERATORS:
        raise _refuse(f"{where}: unknown operator {operator!r}", "unknown_operator")
    if kind not in OPERATORS[operator]:
        raise _refuse(f"{where}: {operator} does not apply to {kind} field {name}", "wrong_type")
    if operator in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise _refuse(f"{where}: {operator} takes a list of 1 to {MAX_LIST} values")
        if not all(_scalar_ok(kind, v) for v in value):
            raise _refuse(f"{where}: every value of {name} is a {kind}", "wrong_type")
        return 1
    if not _scalar_ok(kind, value):
        raise _refuse(f"{where}: the value of {name} is a {kind}", "wrong_type")
    if operator == "matches":
        _check_pattern(value, where)
    if name == "weekday" and operator in ("equals", "not_equals") and value not in WEEKDAYS:
        raise _refuse(f"{where}: a weekday is one of {', '.join(WEEKDAYS)}", "wrong_type")
    return 1


def _strings(value: Any, where: str, *, limit: int = MAX_LIST) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        raise _refuse(f"{where}: a list of up to {limit} strings")
    if not all(isinstance(v, str) and 0 < len(v) <= 320 for v in value):
        raise _refuse(f"{where}: a list of up to {limit} strings")
    return list(value)


def _check_action(action: Any, where: str) -> dict[str, Any]:
    if not isinstance(action, Mapping) or "type" not in action:
        raise _refuse(f"{where}: an action is an object with its type")
    if set(action) - {"type", "parameters"}:
        raise _refuse(f"{where}: an action has only type and parameters")
    kind = action["type"]
    if kind not in ACTIONS:
        raise _refuse(f"{where}: unknown action {kind!r}", "unknown_action")
    parameters = action.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise _refuse(f"{where}.parameters: an object")
    if kind != "require_approval":
        return {"type": kind, "parameters": dict(parameters)}
    known = {"approvers", "roles", "approval_hierarchy", "hierarchy", "timeout_hours"}
    if set(parameters) - known:
        extra = ", ".join(sorted(set(parameters) - known))
        raise _refuse(f"{where}.parameters: unknown parameter {extra}")
    users = _strings(parameters.get("approvers"), f"{where}.parameters.approvers")
    roles = _strings(parameters.get("roles"), f"{where}.parameters.roles")
    ladder = parameters.get("approval_hierarchy", parameters.get("hierarchy")) or {}
    if not isinstance(ladder, Mapping) or len(ladder) > 20:
        raise _refuse(f"{where}.parameters.approval_hierarchy: role names to amounts")
    for role, amount in ladder.items():
        if not isinstance(role, str) or _number(amount) is None or Decimal(str(amount)) < 0:
            raise _refuse(f"{where}.parameters.approval_hierarchy: role names to amounts")
    if not (users or roles or ladder):
        raise _refuse(f"{where}: require_approval names its approvers", "approvers_required")
    timeout = parameters.get("timeout_hours", 24)
    number = _number(timeout)
    if number is None or not Decimal(0) < number <= 720:
        raise _refuse(f"{where}.parameters.timeout_hours: more than 0, at most 720")
    out: dict[str, Any] = {"approvers": users, "roles": roles, "timeout_hours": timeout}
    if ladder:
        out["approval_hierarchy"] = {str(k): v for k, v in ladder.items()}
    return {"type": kind, "parameters": out}


def check_rules(rules: Any) -> dict[str, Any]:
    """The rules as stored, or 422 (nothing is written)."""
    if not isinstance(rules, Mapping) or set(rules) - {"conditions", "actions"}:
        raise _refuse("rules: an object with conditions and actions")
    conditions = rules.get("conditions", [])
    if not isinstance(conditions, list):
        raise _refuse("rules.conditions: a list")
    count = sum(check_condition(c, f"rules.conditions[{i}]") for i, c in enumerate(conditions))
    if count > MAX_CONDITIONS:
        raise _refuse(f"rules: at most {MAX_CONDITIONS} conditions")
    actions = rules.get("actions")
    if not isinstance(actions, list) or not actions or len(actions) > 10:
        raise _refuse("rules.actions: a list of 1 to 10 actions")
    checked = [_check_action(a, f"rules.actions[{i}]") for i, a in enumerate(actions)]
    kinds = {a["type"] for a in checked}
    if "allow" in kinds and kinds & {"deny", "require_approval"}:
        raise _refuse("rules.actions: allow contradicts deny and require_approval", "contradictory")
    return {"conditions": list(conditions), "actions": checked}


def _window(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or set(value) - {"days", "start", "end"}:
        raise _refuse(f"{where}: a window has days, start and end (HH:MM)")
    days = _strings(value.get("days"), f"{where}.days", limit=7)
    if any(d not in WEEKDAYS for d in days):
        raise _refuse(f"{where}.days: weekday names")
    start, end = value.get("start", "00:00"), value.get("end", "24:00")
    if end == "24:00":
        end = "23:59"
    for t in (start, end):
        if not isinstance(t, str) or not _HHMM.match(t):
            raise _refuse(f"{where}: start and end are HH:MM")
    if start >= end:
        raise _refuse(f"{where}: start comes before end")
    return {"days": days, "start": start, "end": end}


def check_exceptions(exceptions: Any) -> dict[str, Any]:
    if exceptions is None:
        return {}
    known = {"roles", "users", "api_keys", "time_windows"}
    if not isinstance(exceptions, Mapping) or set(exceptions) - known:
        raise _refuse("exceptions: an object with roles, users, api_keys and time_windows")
    windows = exceptions.get("time_windows") or []
    if not isinstance(windows, list) or len(windows) > 20:
        raise _refuse("exceptions.time_windows: a list of up to 20 windows")
    return {
        "roles": _strings(exceptions.get("roles"), "exceptions.roles"),
        "users": _strings(exceptions.get("users"), "exceptions.users"),
        "api_keys": _strings(exceptions.get("api_keys"), "exceptions.api_keys"),
        "time_windows": [
            _window(w, f"exceptions.time_windows[{i}]") for i, w in enumerate(windows)
        ],
    }


def fields_of(node: Any) -> set[str]:
    """Every field a (checked) condition tree reads."""
    if isinstance(node, list):
        return set().union(*(fields_of(n) for n in node)) if node else set()
    for key in ("all", "any"):
        if key in node:
            return fields_of(node[key])
    if "not" in node:
        return fields_of(node["not"])
    return {node["field"]}


# ---- evaluation ----


def _compare(operator: str, seen: Any, value: Any) -> bool:
    return bool(_compared(operator, seen, value))


def _compared(operator: str, seen: Any, value: Any) -> Any:
    if seen is None:
        return operator in ("not_equals", "not_in")  # a missing value equals nothing
    if isinstance(seen, Decimal | int | float) and not isinstance(seen, bool):
        number = Decimal(str(seen))
        if operator == "in":
            return any(number == Decimal(str(v)) for v in value)
        if operator == "not_in":
            return all(number != Decimal(str(v)) for v in value)
        target = Decimal(str(value))
        return {
            "equals": number == target,
            "not_equals": number != target,
            "greater_than": number > target,
            "less_than": number < target,
        }.get(operator, False)
    text = str(seen)
    if operator == "equals":
        return text == value
    if operator == "not_equals":
        return text != value
    if operator == "in":
        return text in value
    if operator == "not_in":
        return text not in value
    if operator == "contains":
        return value in text
    if operator == "matches":
        # Anchored, over bounded input: the pattern passed its save-time checks.
        return len(text) <= MAX_MATCHED_TEXT and re.fullmatch(value, text) is not None
    return False


def holds(node: Any, values: Mapping[str, Any]) -> bool:
    if isinstance(node, list):
        return all(holds(n, values) for n in node)
    if "all" in node:
        return all(holds(n, values) for n in node["all"])
    if "any" in node:
        return any(holds(n, values) for n in node["any"])
    if "not" in node:
        return not holds(node["not"], values)
    return _compare(node["operator"], values.get(node["field"]), node["value"])


@dataclass(frozen=True)
class Window:
    days: tuple[str, ...]
    start: str
    end: str

    def covers(self, weekday: str, hhmm: str) -> bool:
        return (not self.days or weekday in self.days) and self.start <= hhmm <= self.end


# ---- compiled evaluation ----

Test = Callable[[Mapping[str, Any]], bool]


def _leaf(name: str, operator: str, value: Any) -> Test:
    """`_compare` for one condition, with its targets converted and its pattern compiled once
    (at compile), so evaluating it is a lookup and a comparison."""
    missing = operator in ("not_equals", "not_in")  # a missing value equals nothing
    try:
        if operator in ("in", "not_in"):
            numbers: Any = frozenset(Decimal(str(v)) for v in value)
        elif operator in ("equals", "not_equals", "greater_than", "less_than"):
            numbers = Decimal(str(value))
        else:
            numbers = None
    except InvalidOperation:  # a text value: a number seen there compares as `_compare` does
        numbers = None
    texts = frozenset(value) if operator in ("in", "not_in") else value
    pattern = re.compile(value) if operator == "matches" else None

    def number_test(number: Decimal) -> bool:
        if operator == "in":
            return number in numbers
        if operator == "not_in":
            return number not in numbers
        if operator == "equals":
            return bool(number == numbers)
        if operator == "not_equals":
            return bool(number != numbers)
        if operator == "greater_than":
            return bool(number > numbers)
        if operator == "less_than":
            return bool(number < numbers)
        return False

    def text_test(text: str) -> bool:
        if operator == "equals":
            return bool(text == value)
        if operator == "not_equals":
            return bool(text != value)
        if operator == "in":
            return text in texts
        if operator == "not_in":
            return text not in texts
        if operator == "contains":
            return bool(value in text)
        if pattern is not None:
            return len(text) <= MAX_MATCHED_TEXT and pattern.fullmatch(text) is not None
        return False

    def test(values: Mapping[str, Any]) -> bool:
        seen = values.get(name)
        if seen is None:
            return missing
        if isinstance(seen, Decimal | int | float) and not isinstance(seen, bool):
            if numbers is None:
                return _compare(operator, seen, value)
            return number_test(seen if isinstance(seen, Decimal) else Decimal(str(seen)))
        return text_test(seen if isinstance(seen, str) else str(seen))

    return test


def compile_conditions(node: Any) -> Test:
    """`holds` of a checked condition tree as one function of the values: built once per policy
    version, evaluated per request (and per call of a dry run)."""
    if isinstance(node, list) or "all" in node:
        parts = tuple(
            compile_conditions(n) for n in (node if isinstance(node, list) else node["all"])
        )
        if len(parts) == 1:
            return parts[0]
        return lambda values: all(p(values) for p in parts)
    if "any" in node:
        options = tuple(compile_conditions(n) for n in node["any"])
        return lambda values: any(p(values) for p in options)
    if "not" in node:
        inner = compile_conditions(node["not"])
        return lambda values: not inner(values)
    return _leaf(node["field"], node["operator"], node["value"])
