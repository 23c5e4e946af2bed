"""TensorFlow's own ``checkpoint_management_test.py`` (ported, see its header) against TensorFlow
and against ``ckptstore.tf2`` / ``ckptstore.tf1.latest_checkpoint`` (see ``harness.py``), and with those modules replacing TensorFlow's wholesale."""

import pytest

from tests.helpers.skips import require_tensorflow
from tests.upstream.harness import load

require_tensorflow()
pytestmark = pytest.mark.slow

globals().update(load("checkpoint_management_test_port", "tf"))
globals().update(load("checkpoint_management_test_port", "dropin"))
globals().update(load("checkpoint_management_test_port", "module"))
