"""Code the test modules (and ``benchmarks/stress.py``) share; fixtures live in ``tests/conftest.py``.

Nothing here imports TensorFlow at import time: the TF helpers import it inside the function
that needs it, so a test module that never builds a model never pays for the import.
"""
