"""Metric series kept in memory between requests, refreshed incrementally while a run trains.

Reading a million-step metric from the database takes a good part of a second; drawing it
downsampled takes a few milliseconds. So the server keeps each series it has served as numpy
arrays, keyed by (run id, metric), and on the next request reads only the steps logged since
(``Store.metric_series(start=...)``). A run whose last step or status moved backwards (deleted
and recreated under the same name, resumed and rewritten) is read again in full. Memory is
bounded: the least recently used series are dropped past ``max_points`` values in all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from ..records import RunInfo
    from ..store import Store


@dataclass
class _Entry:
    steps: np.ndarray
    values: np.ndarray
    last_step: Optional[int]
    status: str


class SeriesCache:
    """``cache.get(run_info, key)`` -> (steps, values) of that metric, from memory when current."""

    def __init__(self, store: "Store", *, max_points: int = 20_000_000) -> None:
        self.store = store
        self.max_points = max_points
        self._entries: OrderedDict[tuple[int, str], _Entry] = OrderedDict()
        # Requests are served from a thread pool; one lock keeps the dict and the LRU order sane.
        self._lock = threading.Lock()

    def get(self, run: "RunInfo", key: str) -> tuple[np.ndarray, np.ndarray]:
        ident = (run.id, key)
        with self._lock:
            entry = self._entries.get(ident)
        if entry is not None and entry.last_step == run.last_step and entry.status == run.status:
            with self._lock:
                self._entries.move_to_end(ident)
            return entry.steps, entry.values
        grows = (
            entry is not None and run.last_step is not None
            and (entry.last_step is None or run.last_step >= entry.last_step)
            and (entry.status == run.status or entry.status == "running")
        )
        if grows and entry is not None:
            start = int(entry.steps[-1]) + 1 if len(entry.steps) else None
            new_steps, new_values = self.store.metric_series(run.name, key, start=start)
            steps = np.concatenate([entry.steps, new_steps])
            values = np.concatenate([entry.values, new_values])
        else:
            steps, values = self.store.metric_series(run.name, key)
        with self._lock:
            self._entries[ident] = _Entry(steps, values, run.last_step, run.status)
            self._entries.move_to_end(ident)
            total = sum(len(e.steps) for e in self._entries.values())
            while total > self.max_points and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                total -= len(dropped.steps)
        return steps, values
