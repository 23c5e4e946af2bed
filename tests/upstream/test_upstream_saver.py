"""TensorFlow's own ``saver_test.py`` (ported, see its header) against TensorFlow and against
``ckptstore.tf1`` (see ``harness.py``). Slow: ~100 tests, twice."""

import pytest

from tests.helpers.skips import require_tensorflow
from tests.upstream.harness import load

require_tensorflow()
pytestmark = pytest.mark.slow

globals().update(load("saver_test_port", "tf"))
globals().update(load("saver_test_port", "dropin"))
