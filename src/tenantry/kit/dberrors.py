"""What a database error means for the request that met it, alike on SQLite and PostgreSQL.

A constraint the database enforced is read by kind, never lumped together:

- **unique** (or exclusion): the value is taken — 409 `already_exists`, naming the field. A
  service checks first and answers its own code (`slug_taken`, `email_taken`); this is what a
  request that lost a race to the same value gets.
- **not null**, **check**: the request left a field empty or out of bounds — 422
  `value_required` / `value_not_allowed`, naming the field. Schemas refuse these first; this is
  the floor under them, never a "retry".
- **foreign key**: a reference to nothing — 422 `unknown_reference`; or a row still referenced
  being deleted — 409 `still_referenced`.

Only a real conflict of concurrent transactions (PostgreSQL's serialization failure, deadlock or
lock timeout; SQLite's lock still held after the busy timeout) is 409 `concurrent_conflict`, the
one answer that says "retry". In every case the transaction rolled back: nothing was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql.schema import ColumnCollectionConstraint

from tenantry.kit.db import Base
from tenantry.kit.errors import Conflict, Problem, Unprocessable


class Kind(StrEnum):
    UNIQUE = "unique"
    NOT_NULL = "not_null"
    CHECK = "check"
    FOREIGN_KEY = "foreign_key"  # a reference to a row that is not there
    STILL_REFERENCED = "still_referenced"  # deleting (or re-keying) a row others refer to
    OTHER = "other"


@dataclass(frozen=True)
class Violation:
    kind: Kind
    table: str | None = None
    columns: tuple[str, ...] = ()
    constraint: str | None = None

    @property
    def field(self) -> str | None:
        """The field to name: the constraint's columns but the tenant's own keys, which scope a
        unique value (a slug is unique per org) and are never what the caller got wrong."""
        named = [c for c in self.columns if c not in _SCOPING_COLUMNS] or list(self.columns)
        return ", ".join(named) or None


_SCOPING_COLUMNS: Final = frozenset({"org_id", "team_id", "chain_id"})

# SQLite's extended result codes, as Python names them (`sqlite3.Error.sqlite_errorname`).
_SQLITE_KINDS: Final = {
    "SQLITE_CONSTRAINT_UNIQUE": Kind.UNIQUE,
    "SQLITE_CONSTRAINT_PRIMARYKEY": Kind.UNIQUE,
    "SQLITE_CONSTRAINT_NOTNULL": Kind.NOT_NULL,
    "SQLITE_CONSTRAINT_CHECK": Kind.CHECK,
    "SQLITE_CONSTRAINT_FOREIGNKEY": Kind.FOREIGN_KEY,
}
# PostgreSQL's SQLSTATEs of class 23 (integrity constraint violation).
_POSTGRES_KINDS: Final = {
    "23505": Kind.UNIQUE,
    "23P01": Kind.UNIQUE,  # an exclusion constraint: the same range or slot is taken
    "23502": Kind.NOT_NULL,
    "23514": Kind.CHECK,
    "23503": Kind.FOREIGN_KEY,
    "23001": Kind.STILL_REFERENCED,  # restrict_violation
}
# Transactions that met each other, which a retry resolves: serialization_failure,
# deadlock_detected, lock_not_available; SQLite's lock held past the busy timeout.
_POSTGRES_CONFLICTS: Final = frozenset({"40001", "40P01", "55P03"})
_SQLITE_CONFLICTS: Final = frozenset({"SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT", "SQLITE_LOCKED"})

_SQLITE_COLUMNS = re.compile(r"constraint failed: (.+)$")
_POSTGRES_KEY = re.compile(r"^Key \(([^)]*)\)=")


def _sqlite_violation(error: Any, statement: str | None) -> Violation:
    kind = _SQLITE_KINDS.get(getattr(error, "sqlite_errorname", ""), Kind.OTHER)
    found = _SQLITE_COLUMNS.search(str(error))
    named = found.group(1) if found else ""
    if kind is Kind.FOREIGN_KEY and (statement or "").lstrip()[:6].upper() == "DELETE":
        kind = Kind.STILL_REFERENCED  # SQLite says no more; a delete can only be refused so
    if kind is Kind.CHECK:
        return Violation(kind, constraint=named or None, columns=_check_columns(named))
    parts = [p.strip() for p in named.split(",") if p.strip()]
    table = parts[0].split(".")[0] if parts and "." in parts[0] else None
    return Violation(kind, table=table, columns=tuple(p.split(".")[-1] for p in parts))


def _postgres_violation(error: Any) -> Violation:
    kind = _POSTGRES_KINDS.get(getattr(error, "sqlstate", None) or "", Kind.OTHER)
    diag = error.diag
    detail = diag.message_detail or ""
    if kind is Kind.FOREIGN_KEY and "still referenced" in detail:
        kind = Kind.STILL_REFERENCED
    if kind is Kind.NOT_NULL and diag.column_name:
        return Violation(kind, table=diag.table_name, columns=(diag.column_name,))
    if kind is Kind.CHECK:
        constraint = diag.constraint_name
        return Violation(kind, diag.table_name, _check_columns(constraint or ""), constraint)
    key = _POSTGRES_KEY.match(detail)
    columns = tuple(c.strip().strip('"') for c in key.group(1).split(",")) if key else ()
    return Violation(kind, diag.table_name, columns or _constraint_columns(diag.constraint_name))


def _constraint_columns(name: str | None) -> tuple[str, ...]:
    """The columns of a named constraint or index, from the models' metadata."""
    if not name:
        return ()
    for table in Base.metadata.tables.values():
        for index in table.indexes:
            if index.name == name:
                return tuple(column.name for column in index.columns)
        for constraint in table.constraints:
            if constraint.name == name and isinstance(constraint, ColumnCollectionConstraint):
                return tuple(column.name for column in constraint.columns)
    return ()


def _check_columns(name: str) -> tuple[str, ...]:
    """A check constraint's column: our naming convention puts it in the name
    (`ck_<table>_<column>_...`), else the constraint's own name is what can be named."""
    for table in Base.metadata.tables.values():
        prefix = f"ck_{table.name}_"
        if name.startswith(prefix):
            rest = name.removeprefix(prefix)
            for column in sorted(table.columns, key=lambda c: -len(c.name)):
                if rest.startswith(column.name):
                    return (column.name,)
    return (name,) if name else ()


def violation_of(exc: IntegrityError) -> Violation:
    """The kind of constraint `exc` broke, with its table and columns where the database says."""
    error = exc.orig
    if hasattr(error, "sqlite_errorname"):
        return _sqlite_violation(error, exc.statement)
    if hasattr(error, "diag"):
        return _postgres_violation(error)
    return Violation(Kind.OTHER)


def integrity_problem(exc: IntegrityError) -> Problem:
    """The answer to a request whose transaction broke a constraint (see the module)."""
    violation = violation_of(exc)
    field = violation.field
    extra = {"field": field} if field else {}
    if violation.kind is Kind.UNIQUE:
        what = f"this {field}" if field else "these values"
        return Conflict(
            f"Something with {what} exists already; nothing was written",
            code="already_exists",
            extra=extra,
        )
    if violation.kind is Kind.NOT_NULL:
        return Unprocessable(
            f"{field or 'A field'} needs a value; nothing was written",
            code="value_required",
            extra=extra,
        )
    if violation.kind is Kind.CHECK:
        return Unprocessable(
            f"{field or 'A field'} has a value that is not allowed; nothing was written",
            code="value_not_allowed",
            extra=extra,
        )
    if violation.kind is Kind.FOREIGN_KEY:
        return Unprocessable(
            f"{field or 'A reference'} names something that does not exist; nothing was written",
            code="unknown_reference",
            extra=extra,
        )
    if violation.kind is Kind.STILL_REFERENCED:
        return Conflict(
            "Other records still refer to this; nothing was written", code="still_referenced"
        )
    return Conflict("The change conflicts with what is stored; nothing was written")


def is_concurrent_conflict(exc: DBAPIError) -> bool:
    """Whether `exc` is a conflict of concurrent transactions, which a retry resolves."""
    error = exc.orig
    name = getattr(error, "sqlite_errorname", None)
    if name is not None:
        return name in _SQLITE_CONFLICTS
    return getattr(error, "sqlstate", None) in _POSTGRES_CONFLICTS


def concurrent_conflict() -> Problem:
    return Conflict(
        "A concurrent request changed the same thing; nothing was written. Retry.",
        code="concurrent_conflict",
        headers={"Retry-After": "1"},
    )
