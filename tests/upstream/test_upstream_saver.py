"""TensorFlow's own ``saver_test.py`` (ported, see its header) against TensorFlow, against the
``ckptstore.tf1`` constructors, and with ``ckptstore.tf1`` replacing TensorFlow's module
wholesale (see ``harness.py``). Slow: ~100 tests, three times."""

import pytest

from tests.helpers.skips import require_tensorflow
from tests.upstream.harness import load

require_tensorflow()
pytestmark = pytest.mark.slow

globals().update(load("saver_test_port", "tf"))
globals().update(load("saver_test_port", "dropin"))
globals().update(load("saver_test_port", "module"))
