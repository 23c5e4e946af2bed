"""TensorFlow's own ``checkpoint_management_test.py`` (ported, see its header) against TensorFlow,
against ``ckptstore.tf2.CheckpointManager`` / ``ckptstore.tf1.latest_checkpoint``, and with
``ckptstore.tf2`` replacing TensorFlow's module wholesale (see ``harness.py``)."""

import pytest

from tests.helpers.skips import require_tensorflow
from tests.upstream.harness import load

require_tensorflow()
pytestmark = pytest.mark.slow

globals().update(load("checkpoint_management_test_port", "tf"))
globals().update(load("checkpoint_management_test_port", "dropin"))
globals().update(load("checkpoint_management_test_port", "module"))
