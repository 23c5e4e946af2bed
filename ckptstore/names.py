"""Names and references: the rules for run and alias names, and the ``REF`` grammar.

A reference names one checkpoint or export::

    run@1000      the checkpoint of run "run" at step 1000
    run@latest    its newest checkpoint
    run@~50000    its newest checkpoint at or below step 50000
    run@best:val_loss
                  its checkpoint with the best ``val_loss`` logged at the checkpoint's step
                  (lowest for losses, highest for accuracy-like names: see
                  ``retention.resolve_mode``; ``run@best:max:score`` / ``run@best:min:x``
                  give the direction explicitly)
    export:7      export number 7
    prod          whatever the alias "prod" points at

Names never contain ``@`` (it splits a reference), path separators or NUL (names reach file
names in ``materialize``), and never start with ``-`` (a CLI would read them as options).
Alias names also exclude ``:`` so that ``export:N`` can never be an alias.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from .constants import INT_MAX, NAME_MAX
from .errors import InvalidNameError, InvalidOptionError, InvalidRefError, MetricValueError

RefKind = Literal["step", "latest", "nearest", "best", "alias", "export"]

_STEP = re.compile(r"[0-9]+")
_EXPORT = re.compile(r"export:([0-9]+)")


def _check_name(name: object, what: str, extra_forbidden: str = "") -> str:
    if not isinstance(name, str):
        raise InvalidNameError(f"{what} name must be a string, not {type(name).__name__}")
    shown = name if len(name) <= 40 else name[:37] + "..."
    if not name or not name.strip():
        raise InvalidNameError(f"{what} name must not be empty")
    if len(name) > NAME_MAX:
        raise InvalidNameError(
            f"{what} name is {len(name)} characters long; the limit is {NAME_MAX}"
        )
    if name in (".", ".."):
        raise InvalidNameError(f"{what} name {name!r} is not allowed")
    if name.startswith("-"):
        raise InvalidNameError(f"{what} name {shown!r} must not start with '-'")
    if name != name.strip():
        raise InvalidNameError(f"{what} name {shown!r} must not start or end with white space")
    for ch in "@/\\" + extra_forbidden:
        if ch in name:
            raise InvalidNameError(f"{what} name {shown!r} must not contain {ch!r}")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise InvalidNameError(
                f"{what} name {shown!r} contains the control character U+{ord(ch):04X}"
            )
    return name


def check_run_name(name: object) -> str:
    """Return ``name`` if it is a valid run name, else raise :class:`InvalidNameError`."""
    return _check_name(name, "run")


def check_alias_name(name: object) -> str:
    """Return ``name`` if it is a valid alias name, else raise :class:`InvalidNameError`."""
    name = _check_name(name, "alias", extra_forbidden=":")
    if name in ("latest",):
        raise InvalidNameError(f"alias name {name!r} is reserved")
    return name


@dataclass(frozen=True)
class Ref:
    """A parsed reference; see the module docstring for the grammar."""

    kind: RefKind
    text: str
    run: str | None = None
    step: int | None = None
    alias: str | None = None
    export_id: int | None = None
    #: For ``run@best:METRIC``: the metric, and "min", "max" or "auto".
    metric: str | None = None
    mode: str | None = None


def parse_ref(text: object) -> Ref:
    """Parse a reference string, raising :class:`InvalidRefError` with the reason if malformed.

    >>> parse_ref("mnist@~5000")
    Ref(kind='nearest', text='mnist@~5000', run='mnist', step=5000, alias=None, export_id=None, metric=None, mode=None)
    """
    if not isinstance(text, str):
        raise InvalidRefError(f"a reference must be a string, not {type(text).__name__}")
    if "@" in text:
        run, _, rest = text.rpartition("@")
        if not run:
            raise InvalidRefError(f"bad reference {text!r}: no run name before '@'")
        if "@" in run:
            raise InvalidRefError(f"bad reference {text!r}: more than one '@'")
        try:
            check_run_name(run)
        except InvalidNameError as exc:
            raise InvalidRefError(f"bad reference {_short(text)!r}: {exc}") from None
        if rest == "latest":
            return Ref("latest", text, run=run)
        if rest.startswith("best:"):
            metric, mode = rest[5:], "auto"
            head, colon, tail = metric.partition(":")
            if colon and head in ("min", "max"):
                metric, mode = tail, head
            if not metric or any(ord(ch) < 32 or ord(ch) == 127 for ch in metric):
                raise InvalidRefError(
                    f"bad reference {_short(text)!r}: after 'best:' expected a metric name, "
                    "e.g. run@best:val_loss or run@best:max:score"
                )
            return Ref("best", text, run=run, metric=metric, mode=mode)
        if rest.startswith("~") and _STEP.fullmatch(rest[1:]):
            # "at or below N" for an N past the largest step is every step: the newest one.
            return Ref("nearest", text, run=run, step=min(int(rest[1:]), INT_MAX))
        if _STEP.fullmatch(rest):
            step = int(rest)
            if step > INT_MAX:
                raise InvalidRefError(f"bad reference {_short(text)!r}: step {_short(rest)} is larger than the largest step, 2**63 - 1")
            return Ref("step", text, run=run, step=step)
        raise InvalidRefError(
            f"bad reference {_short(text)!r}: after '@' expected a step (1000), "
            "'latest', '~N' (nearest step at or below N) or 'best:METRIC'"
        )
    m = _EXPORT.fullmatch(text)
    if m:
        export_id = int(m.group(1))
        if export_id > INT_MAX:
            raise InvalidRefError(f"bad reference {_short(text)!r}: no export id is that large")
        return Ref("export", text, export_id=export_id)
    if text.startswith("export:"):
        raise InvalidRefError(f"bad reference {_short(text)!r}: an export id is a number")
    try:
        check_alias_name(text)
    except InvalidNameError as exc:
        raise InvalidRefError(
            f"bad reference {_short(text)!r}: not run@step, run@latest, run@~N, export:ID "
            f"or an alias ({exc})"
        ) from None
    return Ref("alias", text, alias=text)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def check_step(step: object) -> int:
    """``step`` as an int if it is a whole number from 0 to 2**63 - 1 (a BIGINT column), else
    :class:`MetricValueError`: a larger step would fail deep in the database driver."""
    if isinstance(step, bool):
        raise MetricValueError(f"step must be a whole number >= 0, got {step!r}")
    try:
        i: int = int(step)  # type: ignore[call-overload]  # any object: what int() refuses is caught
    except (TypeError, ValueError, OverflowError):
        raise MetricValueError(f"step must be a whole number >= 0, got {shown(step)}") from None
    if i != step or i < 0:
        raise MetricValueError(f"step must be a whole number >= 0, got {shown(step)}")
    if i > INT_MAX:
        raise MetricValueError(f"step {i} is larger than the largest step, 2**63 - 1")
    return i


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters for an error message."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def check_tags(tags: Mapping[Any, Any]) -> dict[str, str]:
    """Tags as the store keeps them: text keys of 1 to NAME_MAX characters, text values.

    Control characters are allowed in values (they are shown escaped in every table, never
    raw); NUL is refused everywhere because PostgreSQL text cannot hold it.
    """
    out = {str(k): str(v) for k, v in tags.items()}
    for k, v in out.items():
        if not k or len(k) > NAME_MAX:
            raise InvalidNameError(f"tag keys must be 1 to {NAME_MAX} characters, got {k!r:.60}")
        if "\0" in k or "\0" in v:
            raise InvalidNameError(f"tag {k!r:.60} must not contain NUL characters")
    return out


def check_params(params: Mapping[Any, Any]) -> dict[str, Any]:
    """Params as JSON: numbers, text, booleans, None, lists and dicts of them.

    NumPy scalars become numbers and arrays become (nested) lists; other objects are kept as
    their ``repr`` text, as before. Non-finite floats become the text ``"nan"``, ``"inf"``,
    ``"-inf"`` (JSON has no such numbers). NUL characters are refused, naming the param.
    """
    return {str(k): _param(v, str(k)) for k, v in params.items()}


def _param(v: Any, where: str) -> Any:
    import math

    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        if "\0" in v:
            raise InvalidOptionError(f"param {where!r} must not contain NUL characters")
        return v
    if isinstance(v, Mapping):
        return {str(k): _param(x, f"{where}.{k}") for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_param(x, f"{where}[{i}]") for i, x in enumerate(v)]
    tolist = getattr(v, "tolist", None)  # NumPy scalars and arrays, without importing NumPy
    if callable(tolist) and hasattr(v, "dtype"):
        try:
            return _param(tolist(), where)
        except RecursionError:
            raise InvalidOptionError(f"param {where!r} is nested too deeply to store") from None
    return repr(v)


def new_run_name() -> str:
    """A fresh, readable run name: ``run-<local date>-<time>-<4 hex digits>``, sortable by
    start time and unique unless two runs start in the same second with the same 16 random bits
    (``start_run`` then draws again)."""
    import secrets
    from datetime import datetime

    return f"run-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


_DURATION = re.compile(r"(?i)\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*")


def parse_duration(text: str) -> timedelta:
    """``"0s"``, ``"30m"``, ``"1h"``, ``"2d"`` (a bare number is seconds) -> timedelta."""
    m = _DURATION.fullmatch(text or "")
    if not m:
        raise InvalidOptionError(f"not a duration: {text!r} (examples: 0s, 30m, 1h, 2d)")
    unit = (m[2] or "s").lower()[0]
    return timedelta(seconds=float(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])
