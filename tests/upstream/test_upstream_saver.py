"""TensorFlow's own ``saver_test.py`` (ported, see its header) against TensorFlow, against
``ckptstore.tf1`` (see ``harness.py``), and with those modules replacing TensorFlow's wholesale. Slow: ~100 tests, three times."""

import pytest

from tests.helpers.skips import require_tensorflow
from tests.upstream.harness import load

require_tensorflow()
pytestmark = pytest.mark.slow

globals().update(load("saver_test_port", "tf"))
globals().update(load("saver_test_port", "dropin"))
globals().update(load("saver_test_port", "module"))
