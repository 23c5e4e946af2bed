# Two commands matter: `make demo` (the main job) and `make test`. Both create .venv with
# everything needed on a fresh machine that has only Python 3.11 and pip.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install bench clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[tf-cpu,test,postgres,plot,s3,ui]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ckptstore demo

# The whole suite (target: under 20 minutes on 2 cores).
test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q $(PYTEST_ARGS)

# The fast tier: every module, without the tests marked slow (target: under 2 minutes on 2 cores).
test-fast: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/log_metrics.py
	$(PY) benchmarks/save_restore.py
	$(PY) benchmarks/cli_latency.py
	$(PY) benchmarks/object_store.py
	$(PY) benchmarks/ui.py

clean:
	rm -rf $(VENV) .ckptstore build *.egg-info
