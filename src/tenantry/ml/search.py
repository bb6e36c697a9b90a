"""The search language of runs, experiments, registered models and model versions, as MLflow
writes it:

    metrics.loss < 0.6 and params.optimizer = 'adam' and tags.`mlflow.user` LIKE 'a%'
    attributes.status IN ('FINISHED', 'FAILED')

and its `order_by` clauses (`metrics.loss ASC`). Parsed by a grammar (lark, LALR) into
`Comparison`s and `Ordering`s; each kind of search turns them into SQL with its own columns
(`ml.repository`). Anything the grammar or the kind does not take is a `SearchError` whose
message says what and where, which both faces answer as a 400 (MLflow's
INVALID_PARAMETER_VALUE).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

_GRAMMAR = r"""
?start: filter | ordering

filter: comparison (_AND comparison)*
ordering: _ORDER identifier direction?

comparison: identifier OP value                          -> compare
          | identifier NOT? _IN "(" value ("," value)* ")" -> within
          | identifier _IS NOT? _NULL                    -> is_null

identifier: NAME ("." part)*
part: NAME | BACKTICKED | DQ_STRING | NUMBER_PART
direction: ASC | DESC

value: SQ_STRING     -> string
     | DQ_STRING     -> string
     | SIGNED_NUMBER -> number

OP: "<=" | ">=" | "!=" | "<>" | "=" | "<" | ">" | LIKE | ILIKE
LIKE.2: /like\b/i
ILIKE.2: /ilike\b/i
NOT.2: /not\b/i
ASC.2: /asc\b/i
DESC.2: /desc\b/i
_AND.2: /and\b/i
_IN.2: /in\b/i
_IS.2: /is\b/i
_NULL.2: /null\b/i
_ORDER: "\x00order"
NAME: /[A-Za-z_][A-Za-z0-9_\-]*/
NUMBER_PART: /[0-9][A-Za-z0-9_\-]*/
BACKTICKED: /`[^`]*`/
SQ_STRING: /'(?:[^'\\]|\\.|'')*'/
DQ_STRING: /"(?:[^"\\]|\\.)*"/

%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
"""

# A clause of `order_by` is parsed as the grammar's `ordering`, marked by this prefix (a
# character no filter can hold) so that one grammar serves both.
_ORDER_MARK = "\x00order "

Entity = Literal["metric", "param", "tag", "attribute"]
Value = str | float | int | None

_ENTITIES: dict[str, Entity] = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
}


class SearchError(ValueError):
    """A filter or ordering that cannot be searched by, and why."""


@dataclass(frozen=True)
class Comparison:
    entity: Entity
    key: str
    op: str  # =, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL
    value: Value | tuple[Value, ...]


@dataclass(frozen=True)
class Ordering:
    entity: Entity
    key: str
    ascending: bool


def _unquote(text: str) -> str:
    if text[0] == "'" and text[-1] == "'":
        return text[1:-1].replace("''", "'").replace("\\'", "'")
    if text[0] in '"`' and text[-1] == text[0]:
        return text[1:-1].replace('\\"', '"')
    return text


@v_args(inline=True)
class _Build(Transformer[Token, object]):
    def filter(self, *comparisons: Comparison) -> list[Comparison]:
        return list(comparisons)

    def identifier(self, head: Token, *parts: str) -> tuple[str, str]:
        return str(head), ".".join(parts)

    def part(self, token: Token) -> str:
        return _unquote(str(token))

    def string(self, token: Token) -> str:
        return _unquote(str(token))

    def number(self, token: Token) -> float | int:
        text = str(token)
        return float(text) if any(c in text for c in ".eE") else int(text)

    def compare(self, ident: tuple[str, str], op: Token, value: Value) -> Comparison:
        entity, key = _entity(ident)
        name = str(op).upper()
        return Comparison(entity, key, "!=" if name == "<>" else name, value)

    def within(self, ident: tuple[str, str], *rest: object) -> Comparison:
        entity, key = _entity(ident)
        negated = bool(rest) and isinstance(rest[0], Token) and rest[0].type == "NOT"
        values = rest[1:] if negated else rest
        return Comparison(entity, key, "NOT IN" if negated else "IN", tuple(values))  # type: ignore[arg-type]

    def is_null(self, ident: tuple[str, str], negated: Token | None = None) -> Comparison:
        entity, key = _entity(ident)
        return Comparison(entity, key, "IS NOT NULL" if negated else "IS NULL", None)

    def direction(self, token: Token) -> bool:
        return str(token).upper() == "ASC"

    def ordering(self, ident: tuple[str, str], ascending: bool = True) -> Ordering:
        entity, key = _entity(ident)
        return Ordering(entity, key, ascending)


def _entity(ident: tuple[str, str]) -> tuple[Entity, str]:
    head, key = ident
    if not key:  # a bare name is an attribute of the thing searched (`name`, `status`)
        return "attribute", head
    entity = _ENTITIES.get(head.lower())
    if entity is None:
        raise SearchError(
            f"Invalid entity type '{head}': use metrics., params., tags. or attributes."
        )
    return entity, key


@cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False)


def _explain(error: UnexpectedInput, text: str) -> str:
    where = getattr(error, "column", None)
    near = text[max(0, error.pos_in_stream or 0) :][:20] if error.pos_in_stream is not None else ""
    if isinstance(error, UnexpectedToken) and error.token.type == "$END":
        return "the expression ends too early"
    if isinstance(error, UnexpectedCharacters | UnexpectedToken):
        return f"unexpected {near!r} at column {where}"
    return str(error)


def parse_filter(text: str | None) -> list[Comparison]:
    """The comparisons of a filter joined by AND; none for an empty filter."""
    if text is None or not text.strip():
        return []
    if "\x00" in text:
        raise SearchError("Invalid filter: it holds a NUL character")
    try:
        tree = _parser().parse(text)
        built = _Build().transform(tree)
    except SearchError:
        raise
    except UnexpectedInput as exc:
        raise SearchError(f"Invalid filter {text!r}: {_explain(exc, text)}") from None
    except LarkError as exc:
        cause = exc.__context__
        if isinstance(cause, SearchError):
            raise cause from None
        raise SearchError(f"Invalid filter {text!r}: {exc}") from None
    if not isinstance(built, list):
        raise SearchError(f"Invalid filter {text!r}: expected comparisons joined by AND")
    return built


def parse_order_by(clauses: list[str] | None) -> list[Ordering]:
    out: list[Ordering] = []
    for clause in clauses or []:
        if "\x00" in clause or not clause.strip():
            raise SearchError(f"Invalid order_by clause {clause!r}")
        try:
            built = _Build().transform(_parser().parse(_ORDER_MARK + clause))
        except UnexpectedInput as exc:
            raise SearchError(
                f"Invalid order_by clause {clause!r}: {_explain(exc, clause)}"
            ) from None
        except LarkError as exc:
            cause = exc.__context__
            if isinstance(cause, SearchError):
                raise cause from None
            raise SearchError(f"Invalid order_by clause {clause!r}: {exc}") from None
        if not isinstance(built, Ordering):
            raise SearchError(f"Invalid order_by clause {clause!r}")
        out.append(built)
    return out
