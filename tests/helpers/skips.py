"""What a missing optional dependency does to the tests: skip here, fail in CI (``CI=true``)."""

from __future__ import annotations

import os
from typing import Any

import pytest


def in_ci() -> bool:
    """True on CI, where a missing PostgreSQL or TensorFlow must fail the run, never skip it."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tensorflow() -> Any:
    """TensorFlow, for the test modules that need it: ``tf = require_tensorflow()`` at the top.

    Without TensorFlow the calling module is skipped, as with ``pytest.importorskip``, except in
    CI: there an import that breaks fails the run, so a broken TensorFlow install cannot turn
    every TensorFlow test into a silent skip and leave CI green.
    """
    try:
        import tensorflow as tf
    except ImportError as exc:
        reason = f"TensorFlow cannot be imported ({type(exc).__name__}: {exc})"
        if in_ci():
            pytest.fail(f"{reason}; CI must run the TensorFlow tests", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return tf
