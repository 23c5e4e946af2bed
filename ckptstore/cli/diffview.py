"""How ``vars --diff`` prints a diff by value (a helper of ``cli/checkpoints.py``, not a command
group): one row per variable that is not identical, then a summary line such as
``152 identical, 4 value changed, 0 added, 0 removed, 0 dtype/shape changed``."""

from typing import Any

import typer

from ..records import VariableDiff, diff_json
from .output import print_json, shape, table


def _stats_cells(v: Any) -> list[str]:
    if v.stats is None:
        return ["", "", ""]
    s = v.stats
    return [f"{s.max_abs:.3g}", f"{s.mean_abs:.3g}", f"{s.rel_l2:.3g}"]


def show_diff(d: VariableDiff, ref: str, other: str, *, stats: bool, as_json: bool, all_rows: bool = False) -> None:
    """Print ``d`` (from ``ref`` to ``other``) as a table and a summary, or as JSON."""
    if as_json:
        print_json(diff_json(d))
        return
    marks = {"added": "+", "removed": "-", "dtype/shape changed": "~", "value changed": "*", "identical": "=", "unknown": "?"}
    rows = []
    for v in d.variables:
        if v.status == "identical" and not all_rows:
            continue
        b = f"{v.before.dtype}{shape(v.before.shape)}" if v.before else ""
        a = f"{v.after.dtype}{shape(v.after.shape)}" if v.after else ""
        rows.append([marks.get(v.status, "?"), v.name, v.status, *(_stats_cells(v) if stats else []), b, a])
    # The statistics asked for come before the dtypes and shapes, and a narrow terminal wraps
    # the columns into blocks (mark and name repeated) instead of dropping them.
    columns = ["", "name", "status", *(["max|Δ|", "mean|Δ|", "rel L2"] if stats else []), ref, other]
    if rows:
        table(columns, rows, right=(3, 4, 5) if stats else (), keep=2, wrap=True)
    c = d.summary()
    typer.echo(
        f"{c['identical']} identical, {c['value changed']} value changed, {c['added']} added, "
        f"{c['removed']} removed, {c['dtype/shape changed']} dtype/shape changed"
        + (f", {c['unknown']} unknown" if c["unknown"] else "")
    )
