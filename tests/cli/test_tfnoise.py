"""Commands that load TensorFlow print none of its start-up noise and keep everything else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.hardening import ckpt, one_line_error, shown, vanilla_checkpoint

# =========================================================================== 5 and 6. imports


# =========================================================================== 12. TensorFlow's start-up noise


#: oneDNN forced on (its notice then appears on any CPU) and every C++ log level allowed: the
#: command line must still print only its output or its one error line.
NOISY = {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "0"}


@pytest.mark.slow
@pytest.mark.parametrize("env", [NOISY, {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}], ids=["level-0", "level-3"])
def test_commands_that_load_tensorflow_print_no_startup_noise(env: dict, sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    src = tmp_path / "src"
    vanilla_checkpoint(src, 3, value=3.0)
    store = tmp_path / "store"
    r = ckpt("import", str(src), "--run", "x", store=store, env=env)
    assert r.returncode == 0 and r.stderr == "", shown(r)
    r = ckpt("restore", "x@3", "--to", str(tmp_path / "out"), store=store, env=env)
    assert r.returncode == 0 and r.stderr == "", shown(r)
    # An error after TensorFlow was loaded: still exactly one line.
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "checkpoint").write_text("not ours\n")
    r = ckpt("restore", "x@3", "--to", str(tmp_path / "out2"), store=store, env=env)
    one_line_error(r)


def test_the_noise_filter_keeps_everything_else() -> None:
    from ckptstore.cli.tfnoise import without_noise

    noise = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1796559514.299130   17437 port.cc:153] oneDNN custom operations are on. You may see ...\n"
        b"I1206 12:15:01.123456   1234 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...\n"
        b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.\n"
    )
    kept = b"E0000 00:00:1796559514.3   17437 cuda.cc:1] a real error\nsome warning from Python\n"
    assert without_noise(noise + kept + noise) == kept


def test_the_command_line_leaves_onednn_as_tensorflow_chooses(tmp_path: Path) -> None:
    """Numerics stay TensorFlow's: the filter never sets TF_ENABLE_ONEDNN_OPTS."""
    code = (
        "import os, sys\n"
        "from ckptstore.cli import tfnoise\n"
        "tfnoise.install()\n"
        "import tensorflow\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), 'tensorflow' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["None", "True"]
    assert "oneDNN" not in r.stderr and "absl::InitializeLog" not in r.stderr, r.stderr
