"""Metric plots: one PNG, SVG or PDF with a panel per metric and a line per run.

matplotlib is an optional extra (``plot``: ``pip install matplotlib``), imported only here, with
the Agg backend so that plotting works without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CkptstoreError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["check_options", "plot_metrics"]

#: The formats ``plot_metrics`` writes, by file suffix.
FORMATS = ("png", "svg", "pdf")


def _smoothed(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start."""
    out, last, n = [], 0.0, 0
    for v in values:
        n += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight**n))
    return out


def check_options(runs: Sequence[str], metrics: Sequence[str], path: str | os.PathLike[str], smooth: float) -> str:
    """The format ``path`` names, after the checks :func:`plot_metrics` makes before any work
    (the CLI makes them before it looks the runs up, so that errors come in the same order)."""
    if not runs or not metrics:
        raise CkptstoreError("plot needs at least one run and one metric")
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise CkptstoreError(f"cannot tell the format of {str(path)!r}: name a .png, .svg or .pdf file")
    if not (isinstance(smooth, (int, float)) and 0 <= smooth < 1):
        raise CkptstoreError(f"smooth must be from 0 to below 1, got {smooth!r}")
    return fmt


def plot_metrics(
    store: Store,
    runs: Sequence[str],
    metrics: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    log_y: bool = False,
    smooth: float = 0.0,
) -> Path:
    """Write a plot of ``metrics`` against step for ``runs``; returns its path.

    The format is the one the suffix names: ``.png``, ``.svg`` or ``.pdf`` (anything else is
    refused before any work). ``log_y`` makes the y axes logarithmic; ``smooth`` (0 to below 1)
    draws an exponential moving average as TensorBoard's smoothing does, over a faint raw line.

    Steps where a run has a checkpoint are marked on its line. An unknown run is
    :class:`~ckptstore.errors.UnknownRunError`; a metric no run has is a
    :class:`~ckptstore.errors.CkptstoreError` naming the metrics the runs do have.

    >>> plot_metrics(store, ["mlp-a", "mlp-b"], ["loss"], "loss.png")   # doctest: +SKIP
    """
    fmt = check_options(runs, metrics, path, smooth)
    series = {run: store.steps(run, keys=metrics) for run in runs}  # unknown runs fail here
    ckpt_steps = {run: {ck.step for ck in store.checkpoints(run)} for run in runs}
    present = {k for rows in series.values() for r in rows for k in r.metrics}
    missing = [m for m in metrics if m not in present]
    if missing:
        have = sorted({k for run in runs for k in store.metric_keys(run)})
        raise CkptstoreError(
            f"no values of {', '.join(map(repr, missing))} in run(s) {', '.join(runs)}"
            + (f"; they have {', '.join(have)}" if have else "; they have no metrics")
        )
    try:
        import matplotlib
    except ImportError:
        raise CkptstoreError("plot needs matplotlib: pip install matplotlib (ckptstore's 'plot' extra)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(metrics), 1, sharex=True, squeeze=False, figsize=(8, 2.8 * len(metrics) + 0.6))
    try:
        for ax, metric in zip(axes[:, 0], metrics):
            for run in runs:
                points = [(r.step, r.metrics[metric]) for r in series[run] if metric in r.metrics]
                if not points:
                    continue
                xs, ys = zip(*points)
                if smooth:
                    (raw,) = ax.plot(xs, ys, linewidth=0.8, alpha=0.25)
                    (line,) = ax.plot(xs, _smoothed(ys, smooth), label=run, linewidth=1.2, color=raw.get_color())
                else:
                    (line,) = ax.plot(xs, ys, label=run, linewidth=1.2)
                marks = [(x, y) for x, y in points if x in ckpt_steps[run]]
                if marks:
                    mx, my = zip(*marks)
                    ax.plot(mx, my, "o", color=line.get_color(), markersize=4)
            ax.set_ylabel(metric)
            if log_y:
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
        # Beside the charts, never over the curves (six runs of a grid fill the plot area).
        axes[0, 0].legend(fontsize="small", title="dots: checkpoints", title_fontsize="small",
                          loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        axes[-1, 0].set_xlabel("step")
        from matplotlib.ticker import MaxNLocator

        axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        fig.suptitle(title or ", ".join(metrics) + " by step")
        fig.tight_layout()
        out = Path(path)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, format=fmt, dpi=110, bbox_inches="tight")  # the legend outside included
        except OSError as exc:
            raise CkptstoreError(f"cannot write {out}: {exc.strerror}") from None
    finally:
        plt.close(fig)
    return out
