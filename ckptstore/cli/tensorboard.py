"""``ckptstore tensorboard``: write runs as TensorBoard event files, once or following them."""

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from .app import check_first, command, open_store


@command(name="tensorboard", quick=True)
def tensorboard(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(metavar="RUN", help="Runs to export (or globs, e.g. 'lr-*').")],
    logdir: Annotated[str, typer.Option("--logdir", metavar="DIR", help="Directory for the event files (one subdirectory per run).")],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", metavar="METRIC", help="Only this metric; repeatable.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace event files an earlier export left in a run's subdirectory.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep appending what the runs log until they end (or Ctrl-C); new runs a glob matches too.")
    ] = False,
    interval: Annotated[
        float | None, typer.Option("--interval", metavar="S", help="With --follow: seconds between two looks at the store (2).")
    ] = None,
) -> None:
    """Write runs' metrics, params (HParams) and checkpoint markers as TensorBoard event files, one subdirectory per run ('tensorboard --logdir DIR' shows them)."""
    from ..tensorboard import ExportExistsError

    if interval is not None and not follow:
        raise typer.BadParameter("only with --follow", param_hint="--interval")
    if interval is not None and not interval > 0:  # not: NaN too
        raise typer.BadParameter(f"{interval} is not a number of seconds above 0.", param_hint="--interval")
    check_first(ctx, lambda r: [r.get_run(name) for name in r.expand_runs(runs)])
    store = open_store(ctx, readonly=True)
    try:
        _export(store, runs, logdir, metric, force, follow, interval)
    except ExportExistsError as exc:
        raise ExportExistsError(exc.directory, "--force replaces them") from None  # the CLI's word for force=True


def _export(store: Any, runs: list[str], logdir: str, metric: list[str] | None, force: bool, follow: bool,
            interval: float | None) -> None:
    from ..tensorboard import follow_event_files, write_event_files

    if not follow:
        for path in write_event_files(store, runs, logdir, keys=metric, force=force):
            typer.echo(str(path))
        return
    first = True

    def started(paths: list[Path]) -> None:
        nonlocal first
        for path in paths:
            typer.echo(str(path))
        if first:
            typer.echo(f"following {len(paths)} run(s); Ctrl-C to stop", err=True)
            first = False

    # Ctrl-C (or a kill) ends the follow between two looks at the store, so the files are
    # flushed and closed whole, and the command exits 0: stopping is how a follow ends.
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        # Set from another thread: the handler may run while this thread holds the event's
        # own lock (inside its wait), and setting it here would then wait forever.
        threading.Thread(target=stop.set, daemon=True).start()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        follow_event_files(store, runs, logdir, keys=metric, force=force, interval=interval or 2.0, stop=stop,
                           on_new_files=started)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo("stopped; the files are complete up to here" if stop.is_set() else "every run ended", err=True)
