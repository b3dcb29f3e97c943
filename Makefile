# Two commands do all the setup on a fresh machine: `make run` and `make test`.
# Each creates .venv from the machine's python3 when missing and installs the locked versions.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
# Packages are installed with their bytecode, as pip does in the Lambda image: a process that must
# compile numpy, pyarrow and boto3 from source on import (no writable __pycache__, or
# PYTHONDONTWRITEBYTECODE set) spends ~0.4 s more on imports per cold start, every time.
# A fresh venv's pip (23.x) ignores --python-version when checking Requires-Python; the image check needs a current one.
PIP_VERSION := 26.3

# jsii (under aws-cdk-lib) prints a banner on Node 20; infra/ puts Node 22 from PyPI first on PATH.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export XDG_RUNTIME_DIR ?= /tmp

.PHONY: install run test test-fast lint format bench synth image-check lock clean

$(STAMP): pyproject.toml requirements-dev.lock
	@# A venv without pip is one whose creation failed half-way (no ensurepip): made anew.
	@test -x $(BIN)/pip || python3 -m venv --clear $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)" "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(PY) --quiet --compile-bytecode -r requirements-dev.lock
	$(BIN)/uv pip install --python $(PY) --quiet --no-deps -e .
	@touch $@

install: $(STAMP)

## The main job: the deployed state machine, executed locally against a real PostgreSQL
## (embedded, seeded with a simulated arena of 100k votes). Extra options: make run ARGS="--inject-fault rank:transient".
run: $(STAMP)
	$(BIN)/leaderboard run $(ARGS)

## The whole test suite: the fast unit tests, then the end-to-end suite.
test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

## The unit tests only (well under a minute): pure code, one stage's I/O, the local machinery.
test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

lint: $(STAMP) image-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy common stages infra local cli bench tests
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Speed and memory against the baselines, side by side: a table, then one JSON line each.
bench: $(STAMP)
	$(PY) -m bench $(BENCH)

## The CloudFormation template into cdk.out/, through cdk.json like `cdk synth` (CDK CLI via npx, Node 22 from the venv).
synth: $(STAMP)
	$(PY) -m infra.cdk_cli synth --quiet

## The Lambda image's packages install for Python 3.12 manylinux and every handler imports (no Docker).
image-check: $(STAMP)
	$(PY) -m infra.check_image

## Regenerate the locks after changing pyproject.toml (dev: this machine; runtime: the Lambda image).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.12 --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .local
