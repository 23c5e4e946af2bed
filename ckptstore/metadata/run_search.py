"""The run search language: ``where`` filters and ``order_by`` keys of ``store.runs`` and
``ckptstore runs list --where/--sort``, parsed by a small tokenizer and recursive-descent parser
and compiled to SQL text with bound parameters (no user text ever reaches the SQL itself).

Grammar::

    where    := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | "(" or ")" | field OP value
    OP       := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value    := NUMBER | 'text' | "text" | word | true | false | null
    order_by := key ("," key)*      key := ["-"] field ["asc" | "desc"]
    field    := name | status | created | ended | last_step | checkpoints
              | params.NAME | tags.NAME | tag | metrics.NAME[.last|.min|.max|.best]

``tag = 'x'`` is true for a run that has a tag named ``x`` (``tag != 'x'``: that has none);
``tags.team = 'vision'`` compares a tag's value (tags are text). ``metrics.NAME`` is the last
value; ``.best`` is ``.max`` for accuracy-like names and ``.min`` otherwise. A NAME with other
characters is quoted: ``params."drop-out"``. Dates compare with ISO text in local time
(``created >= '2026-11-29'``). A run without the field (no such param, metric or tag) matches no
comparison and sorts last either way.

The compiler is plain Python producing SQL for SQLite or PostgreSQL, so that the CLI's quick path
(standard library ``sqlite3``) and the store (SQLAlchemy) run the same query. No SQLAlchemy here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import QuerySyntaxError

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![A-Za-z_])
    | (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<op><=|>=|!=|<>|==|=|<|>)
    | (?P<punct>[().,])
    | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*)
    | (?P<minus>-)
    )""",
    re.VERBOSE,
)

KEYWORDS = frozenset({"and", "or", "not", "asc", "desc"})
PLAIN_FIELDS = {
    "name": "r.name", "status": "r.status",
    "created": "r.created_at", "created_at": "r.created_at", "started": "r.created_at",
    "ended": "r.ended_at", "ended_at": "r.ended_at",
    "last_step": "(SELECT MAX(m.step) FROM metrics m WHERE m.run_id = r.id)",
    "checkpoints": "(SELECT COUNT(*) FROM checkpoints c WHERE c.run_id = r.id)",
}
AGGREGATES = ("last", "min", "max", "best")
FIELDS_HELP = "name, status, created, ended, last_step, checkpoints, params.X, tags.X, tag, metrics.X[.last|.min|.max|.best]"


@dataclass(frozen=True)
class Token:
    kind: str  # num, str, op, punct, word, minus, end
    text: str
    col: int  # 1-based column in the expression


_SPACE = re.compile(r"\s*")
#: Bounds on one expression, so that a search costs the server little whatever it is sent (and
#: the recursive parser and SQLite's expression depth limit of 1000 are never reached).
MAX_TEXT = 20_000
MAX_DEPTH = 50
MAX_TERMS = 200


def tokenize(text: str, what: str = "where") -> list[Token]:
    """The tokens of ``text``, in linear time (each step matches from the current position)."""
    if len(text) > MAX_TEXT:
        raise QuerySyntaxError(f"bad {what}: {len(text)} characters is too long (at most {MAX_TEXT})")
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        space = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if space == len(text):
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            col = space + 1
            raise _error(what, text, col, f"unexpected character {text[col - 1]!r}")
        kind = m.lastgroup or ""
        start = m.start(kind)
        out.append(Token(kind, m.group(kind), start + 1))
        pos = m.end()
    out.append(Token("end", "", len(text) + 1))
    return out


class UnknownFieldError(QuerySyntaxError):
    """A word where a field was expected that is no field (``val_accuracy`` for
    ``metrics.val_accuracy.max``): ``word`` lets a caller that knows the store's names suggest one."""

    def __init__(self, message: str, word: str, what: str) -> None:
        super().__init__(message)
        self.word, self.what = word, what


def _error(what: str, text: str, col: int, message: str) -> QuerySyntaxError:
    shown = text if len(text) <= 200 else text[:197] + "..."
    return QuerySyntaxError(f"bad {what} at column {col}: {message} (in {shown!r})")


def _storable(what: str, text: str, col: int, value: str, role: str) -> str:
    """``value`` if a database can hold it as text: no NUL (PostgreSQL refuses it), valid
    Unicode (a lone surrogate cannot be encoded)."""
    if "\x00" in value:
        raise _error(what, text, col, f"a {role} cannot contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _error(what, text, col, f"a {role} cannot contain a lone surrogate (not valid Unicode)") from None
    return value


# --------------------------------------------------------------------------- the syntax tree


@dataclass(frozen=True)
class Field:
    kind: str  # plain, param, tag_value, tag, metric
    name: str  # the plain field's name, or the param / tag / metric name
    agg: str = "last"


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str
    value: Any  # float, int, str, bool or None


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    part: Any


@dataclass(frozen=True)
class SortKey:
    field: Field
    descending: bool


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text, self.what = text, what
        self.tokens = tokenize(text, what)
        self.i = 0
        self.depth = 0
        self.terms = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, message: str, tok: Token | None = None) -> QuerySyntaxError:
        t = tok or self.tok
        shown = f"{t.text!r}" if t.kind != "end" else "the end"
        return _error(self.what, self.text, t.col, f"{message}, found {shown}")

    def word(self, *words: str) -> bool:
        t = self.tok
        if t.kind == "word" and t.text.lower() in words:
            self.i += 1
            return True
        return False

    def punct(self, p: str) -> bool:
        if self.tok.kind == "punct" and self.tok.text == p:
            self.i += 1
            return True
        return False

    # where
    def where(self) -> Any:
        node = self.or_()
        if self.tok.kind != "end":
            raise self.fail("expected 'and', 'or' or the end")
        return node

    def or_(self) -> Any:
        parts = [self.and_()]
        while self.word("or"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_(self) -> Any:
        parts = [self.not_()]
        while self.word("and"):
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def not_(self) -> Any:
        start = self.tok
        if start.kind in ("word", "punct") and start.text.lower() in ("not", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _error(self.what, self.text, start.col, f"nested more than {MAX_DEPTH} levels deep")
            try:
                if self.word("not"):
                    return Not(self.not_())
                self.punct("(")
                node = self.or_()
                if not self.punct(")"):
                    raise self.fail("expected ')'")
                return node
            finally:
                self.depth -= 1
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise _error(self.what, self.text, start.col, f"more than {MAX_TERMS} comparisons")
        f = self.field()
        t = self.tok
        if t.kind != "op":
            raise self.fail("expected a comparison (=, !=, <, <=, >, >=)")
        self.i += 1
        op = {"==": "=", "<>": "!="}.get(t.text, t.text)
        value = self.value()
        return self.check(Compare(f, op, value), t)

    def value(self) -> Any:
        t = self.tok
        if t.kind == "num":
            self.i += 1
            return float(t.text) if any(ch in t.text for ch in ".eE") else int(t.text)
        if t.kind == "str":
            self.i += 1
            q = t.text[0]
            return _storable(self.what, self.text, t.col, t.text[1:-1].replace(q + q, q), "value")
        if t.kind == "word" and t.text.lower() not in KEYWORDS:
            self.i += 1
            low = t.text.lower()
            return {"true": True, "false": False, "null": None, "none": None}.get(low, t.text)
        raise self.fail("expected a value (a number, 'text' or a word)")

    def check(self, cmp: Compare, at: Token) -> Compare:
        v, f = cmp.value, cmp.field
        if f.kind == "metric" and v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise _error(self.what, self.text, at.col + len(at.text) + 1, "metrics compare with numbers")
        if f.kind == "tag" and (cmp.op not in ("=", "!=") or not isinstance(v, str)):
            raise _error(self.what, self.text, at.col, "'tag' takes = or != and a tag name, e.g. tag = 'baseline'")
        if (v is None or isinstance(v, bool)) and cmp.op not in ("=", "!="):
            raise _error(self.what, self.text, at.col, f"{cmp.op} needs a number or text, not {v!r}")
        if f.kind == "plain" and v is not None:
            # One meaning on both databases (PostgreSQL refuses mixed types, SQLite mixes them
            # its own way): text fields compare as text, counts with numbers, dates with dates.
            if f.name in ("name", "status"):
                if not isinstance(v, str):
                    v = ("true" if v else "false") if isinstance(v, bool) else str(v)
            elif f.name in ("last_step", "checkpoints"):
                if isinstance(v, str):
                    try:
                        v = int(v) if re.fullmatch(r"\s*-?\d+\s*", v) else float(v)
                    except ValueError:
                        raise _error(self.what, self.text, at.col, f"{f.name} compares with numbers, not {v!r}") from None
                if isinstance(v, bool):
                    raise _error(self.what, self.text, at.col, f"{f.name} compares with numbers, not {v!r}")
            elif not isinstance(v, str):
                raise _error(self.what, self.text, at.col, f"{f.name} compares with dates as ISO text (e.g. '2026-11-29'), not {v!r}")
            cmp = Compare(f, cmp.op, v)
        return cmp

    def field(self) -> Field:
        t = self.tok
        if t.kind != "word" or t.text.lower() in KEYWORDS:
            raise self.fail(f"expected a field ({FIELDS_HELP})")
        self.i += 1
        head = t.text.lower()
        if head in ("params", "param", "tags", "metrics", "metric"):
            if not self.punct("."):
                raise self.fail(f"expected '.NAME' after {t.text!r}")
            name = self.name()
            if head.startswith("param"):
                return Field("param", name)
            if head == "tags":
                return Field("tag_value", name)
            agg = "last"
            if self.tok.kind == "punct" and self.tok.text == "." :
                self.i += 1
                a = self.tok
                if a.kind != "word" or a.text.lower() not in AGGREGATES:
                    raise self.fail("expected last, min, max or best")
                self.i += 1
                agg = a.text.lower()
            return Field("metric", name, agg)
        if head == "tag":
            return Field("tag", "")
        if head in PLAIN_FIELDS:
            return Field("plain", head)
        err = _error(self.what, self.text, t.col, f"unknown field {t.text!r}; fields are {FIELDS_HELP}")
        raise UnknownFieldError(str(err), t.text, self.what)

    def name(self) -> str:
        t = self.tok
        if t.kind == "word":
            self.i += 1
            return t.text
        if t.kind == "str":
            self.i += 1
            return _storable(self.what, self.text, t.col, t.text[1:-1].replace(t.text[0] * 2, t.text[0]), "name")
        if t.kind == "num" and not t.text.startswith("-"):
            self.i += 1
            return t.text
        raise self.fail("expected a name (quote it if it has other characters: \"drop-out\")")

    # order_by
    def order(self) -> list[SortKey]:
        keys = []
        while True:
            desc = False
            if self.tok.kind == "minus":
                self.i += 1
                desc = True
            at = self.tok
            f = self.field()
            if f.kind == "tag":
                raise _error(self.what, self.text, at.col, "'tag' only filters (tag = 'x'); sort by a tag's value with tags.NAME")
            if self.word("desc"):
                desc = True
            else:
                self.word("asc")
            keys.append(SortKey(f, desc))
            if self.tok.kind == "end":
                return keys
            if not self.punct(","):
                raise self.fail("expected ',' or the end")


def parse_where(text: str) -> Any:
    """The syntax tree of a ``where`` expression; :class:`QuerySyntaxError` names the bad token."""
    return _Parser(text, "where").where()


def parse_order(order_by: str | Sequence[str]) -> list[SortKey]:
    """Sort keys from ``"metrics.loss.min, -created"`` or ``["metrics.loss.min", "-created"]``."""
    if not isinstance(order_by, str):
        order_by = ", ".join(order_by)
    if not order_by.strip():
        return []
    return _Parser(order_by, "sort").order()


def parse_fields(text: str | Sequence[str], what: str = "columns") -> list[Field]:
    """Fields from ``"params.lr, metrics.val_accuracy.max"`` (the sort grammar, directions ignored)."""
    if not isinstance(text, str):
        text = ", ".join(text)
    if not text.strip():
        return []
    return [key.field for key in _Parser(text, what).order()]


def field_label(f: Field) -> str:
    """How a field is written: ``params.lr``, ``tags.team``, ``metrics.loss.min``, ``name``."""
    if f.kind == "plain":
        return f.name
    name = f.name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*|\d+", f.name) else '"' + f.name.replace('"', '""') + '"'
    if f.kind == "param":
        return f"params.{name}"
    if f.kind == "tag_value":
        return f"tags.{name}"
    return f"metrics.{name}.{f.agg}"


def where_fields(node: Any) -> list[Field]:
    """Every field a parsed ``where`` compares, in order."""
    if isinstance(node, BoolOp):
        return [f for p in node.parts for f in where_fields(p)]
    if isinstance(node, Not):
        return where_fields(node.part)
    return [node.field] if isinstance(node, Compare) else []


# --------------------------------------------------------------------------- to SQL


@dataclass
class Compiled:
    """SQL fragments over ``runs r`` and their parameters, in order."""

    where: str = ""
    where_args: list[Any] = field(default_factory=list)
    order: str = ""
    order_args: list[Any] = field(default_factory=list)


class _Compiler:
    def __init__(self, dialect: str, ph: str) -> None:
        self.pg = dialect == "postgresql"
        self.ph = ph

    def expr(self, f: Field, args: list[Any], numeric: bool) -> str:
        """SQL for a field's value; ``numeric``: compared with a number (PostgreSQL's JSON is text)."""
        ph = self.ph
        if f.kind == "plain":
            return PLAIN_FIELDS[f.name]
        if f.kind == "param":
            args.append(f.name)
            if self.pg:
                if numeric:
                    args.append(f.name)
                    return (f"(CASE WHEN json_typeof(r.params -> CAST({ph} AS TEXT)) = 'number' "
                            f"THEN CAST(r.params ->> CAST({ph} AS TEXT) AS DOUBLE PRECISION) END)")
                return f"(r.params ->> CAST({ph} AS TEXT))"
            # json_each, not a JSON path: its keys are unescaped, so a name that json.dumps
            # escaped ("\u00df" for ß) or that holds '"' matches, as on PostgreSQL.
            if numeric:
                return (f"(SELECT CASE WHEN j.type IN ('integer', 'real') THEN j.value END "
                        f"FROM json_each(r.params) j WHERE j.key = {ph})")
            # json_each gives 1/0 for JSON booleans; compared with text they read as JSON does.
            return (f"(SELECT CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE j.value END "
                    f"FROM json_each(r.params) j WHERE j.key = {ph})")
        if f.kind == "tag_value":
            args.append(f.name)
            return f"(SELECT t.value FROM run_tags t WHERE t.run_id = r.id AND t.key = {ph})"
        if f.kind == "metric":
            args.append(f.name)
            agg = f.agg
            if agg == "best":
                from ..retention import resolve_mode

                agg = resolve_mode(f.name)
            if agg == "last":
                return (f"(SELECT m.value FROM metrics m WHERE m.run_id = r.id AND m.key = {ph} "
                        "ORDER BY m.step DESC LIMIT 1)")
            return f"(SELECT {agg.upper()}(m.value) FROM metrics m WHERE m.run_id = r.id AND m.key = {ph})"
        raise AssertionError(f.kind)

    def literal(self, f: Field, value: Any) -> Any:
        if f.kind == "plain" and f.name in ("created", "created_at", "started", "ended", "ended_at") and isinstance(value, str):
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                raise QuerySyntaxError(f"bad where: {value!r} is not a date (use ISO text, e.g. '2026-11-29 14:00')") from None
            dt = (dt.astimezone() if dt.tzinfo is None else dt).astimezone(timezone.utc)
            # SQLite holds SQLAlchemy's text form of naive UTC; PostgreSQL a timestamptz.
            return dt if self.pg else dt.replace(tzinfo=None).isoformat(sep=" ")
        if f.kind == "tag_value" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # tags are text: tags.seed = 3 means '3'
        if isinstance(value, int) and not isinstance(value, bool) and not -(1 << 63) <= value < (1 << 63):
            return float(value)  # beyond int64 (SQLite cannot bind it): compared as JSON numbers are read
        return value

    def node(self, n: Any, args: list[Any]) -> str:
        ph = self.ph
        if isinstance(n, BoolOp):
            return "(" + f" {n.op.upper()} ".join(self.node(p, args) for p in n.parts) + ")"
        if isinstance(n, Not):
            inner = self.node(n.part, args)
            # A comparison with a missing field is NULL, and NOT NULL is still no match; a run
            # without the field does match "not (...)", as people read it.
            return f"(NOT COALESCE({inner}, FALSE))" if self.pg else f"(NOT COALESCE({inner}, 0))"
        assert isinstance(n, Compare)
        f, op, value = n.field, n.op, n.value
        if f.kind == "tag":
            args.append(value)
            exists = f"EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.id AND t.key = {ph})"
            return exists if op == "=" else f"NOT {exists}"
        if value is None:
            return f"({self.expr(f, args, False)} IS {'NOT ' if op == '!=' else ''}NULL)"
        if isinstance(value, bool):
            value = "true" if value else "false"  # as a JSON param reads (see expr)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        sql = self.expr(f, args, numeric)
        lit = self.literal(f, value)
        args.append(lit)
        if self.pg and isinstance(lit, str):
            return f"({sql} {op} CAST({ph} AS TEXT))"
        return f"({sql} {op} {ph})"


def field_sql(f: Field, args: list[Any], *, dialect: str, ph: str) -> str:
    """SQL over ``runs r`` for a param, tag or metric field's value, numbers as numbers (what
    ``where`` compares and ``order_by`` sorts by); its parameters are appended to ``args``."""
    return _Compiler(dialect, ph).expr(f, args, f.kind in ("metric", "plain"))


def compile_search(
    where: str | None, order_by: None | str | Sequence[str], *, dialect: str, ph: str
) -> Compiled:
    """Parse and compile ``where`` and ``order_by`` for ``dialect`` ("sqlite" or "postgresql");
    the default order is newest first."""
    c = _Compiler(dialect, ph)
    out = Compiled()
    if where is not None and where.strip():
        out.where = c.node(parse_where(where), out.where_args)
    parts: list[str] = []
    for key in parse_order(order_by) if order_by is not None else []:
        f = key.field
        way = " DESC" if key.descending else " ASC"
        # Numbers before text for params (PostgreSQL's JSON text would sort 1e-05 after 0.01).
        for numeric in ((True, False) if f.kind == "param" else (f.kind == "metric",)):
            # Missing values last in both directions (PostgreSQL would put NULL first descending,
            # SQLite first ascending); NULLS LAST is SQLite 3.30+ and PostgreSQL.
            parts.append(c.expr(f, out.order_args, numeric) + way + " NULLS LAST")
    parts += ["r.created_at DESC", "r.id DESC"] if not parts else ["r.id DESC"]
    out.order = ", ".join(parts)
    return out
