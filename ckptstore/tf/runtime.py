"""Importing TensorFlow on first use, and the small text helpers its error messages need."""

from __future__ import annotations

from typing import Any

from ..errors import TensorFlowMissingError


def tf() -> Any:
    """The ``tensorflow`` module; :class:`TensorFlowMissingError` if it is not installed."""
    try:
        import tensorflow
    except ImportError as exc:
        raise TensorFlowMissingError(
            "this operation needs TensorFlow: pip install tensorflow-cpu (or tensorflow; ckptstore's 'tf-cpu' / 'tf' extras)"
        ) from exc
    return tensorflow


def first_line(text: str) -> str:
    """The first line of a TensorFlow error message, cut to 300 characters."""
    text = (text or "").strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 300 else line[:297] + "..."


def few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")
