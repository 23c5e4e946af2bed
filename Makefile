# Two commands matter: `make demo` (the main job) and `make test`. Both create .venv with
# everything needed on a fresh machine that has only Python 3.11 and pip.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast check install bench clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[tf-cpu,test,postgres,plot,s3,ui]'
	@# Bytecode now, as pip does for a wheel: an editable install leaves it to the first import,
	@# which cannot write it under PYTHONDONTWRITEBYTECODE and then compiles on every CLI call.
	$(PY) -m compileall -q ckptstore
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ckptstore demo

# One pytest worker per core (pytest-xdist): most tests wait on a subprocess, TensorFlow or a
# database, and every fixture is per-test or per-worker (each worker starts its own PostgreSQL
# and S3 servers), so tests are independent of their worker. WORKERS=0 runs them in one process.
WORKERS ?= auto

# The static checks, before any test: ruff (lint) and mypy (types), both configured in
# pyproject.toml and both clean; any finding fails the target, and so `make test` and CI.
check: $(STAMP)
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/mypy

# The whole suite (target: under 20 minutes on 2 cores).
test: check
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q -n $(WORKERS) $(PYTEST_ARGS)

# The fast tier: every module, without the tests marked slow (target: under 2 minutes on 2 cores).
test-fast: check
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q -n $(WORKERS) -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/log_metrics.py
	$(PY) benchmarks/save_restore.py
	$(PY) benchmarks/cli_latency.py
	$(PY) benchmarks/object_store.py
	$(PY) benchmarks/ui.py

clean:
	rm -rf $(VENV) .ckptstore build *.egg-info
