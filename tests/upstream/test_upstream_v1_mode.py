"""The upstream tests TensorFlow marks V1-only (``test_util.run_v1_only``), which skip under TF2
behaviour, run in a child process with ``tf.compat.v1.disable_v2_behavior()`` (as TensorFlow's
own V1 test targets run them), against TensorFlow and the drop-ins. A child process, because V2
behaviour cannot be switched back on for the rest of the session."""

import os
import re
import textwrap
from pathlib import Path

import pytest

from tests.helpers.processes import run_py
from tests.helpers.skips import require_tensorflow

require_tensorflow()
pytestmark = pytest.mark.slow

V1_ONLY = ["testInt64", "testBasicsWithListOfVariables", "testReshape", "testAddCollectionDef",
           "testMultiSaverCollection", "testClearExtraneousSavers", "testSliceVariable",
           "testStrippedOpListDef", "testGraphChangedForRestoreErrorRaised"]


def test_v1_only_upstream_tests_pass_on_both_targets(tmp_path):
    root = Path(__file__).resolve().parents[2]
    code = textwrap.dedent(
        f"""
        import os, sys
        import tensorflow as tf
        tf.compat.v1.disable_v2_behavior()
        import pytest
        os.chdir({str(root)!r})
        sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-m", "slow or not slow",
                              "tests/upstream/test_upstream_saver.py", "-k", {" or ".join(V1_ONLY)!r}]))
        """
    )
    env = {"CKPTSTORE_URI": str(tmp_path / ".ckptstore"), "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = run_py(code, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    passed = re.search(r"(\d+) passed", out.stdout)
    assert passed is not None and int(passed.group(1)) >= 2 * len(V1_ONLY)  # -k matches a few more by substring, out.stdout[-2000:]
    assert "skipped" not in out.stdout.splitlines()[-1], out.stdout[-2000:]
