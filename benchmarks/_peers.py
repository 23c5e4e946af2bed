"""Finding the peers the benchmarks compare against. MLflow is never a ckptstore dependency:
it may be importable here, or live in a virtualenv of its own (``/tmp/mlflow-venv`` by
default, or the interpreter named with ``--mlflow-python``), and is then driven in that
interpreter as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEFAULT_MLFLOW_VENV_PYTHON = "/tmp/mlflow-venv/bin/python"


def find_mlflow_python(explicit: str | None = None) -> str | None:
    """An interpreter that can ``import mlflow``: ``explicit``, else this one, else the default venv's."""
    candidates = [explicit] if explicit else [sys.executable, DEFAULT_MLFLOW_VENV_PYTHON]
    for py in candidates:
        if py and Path(py).exists():
            if subprocess.run([py, "-c", "import mlflow"], capture_output=True).returncode == 0:
                return py
    return None
