# One entry point for people and CI. Each target builds what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
TOOLS_VENV ?= .venv-tools
BIN := $(VENV)/bin
UV := $(BIN)/uv
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck hadolint venv tools browser lock config-docs clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv

# The image and CI install from the same lock file; the project itself goes in without deps.
$(VENV)/.installed: requirements/dev.lock pyproject.toml | $(BIN)/python
	$(UV) pip sync --python $(BIN)/python --quiet requirements/dev.lock
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

$(TOOLS_VENV)/.installed: requirements/tools.lock | $(BIN)/python
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(UV) pip sync --python $(TOOLS_VENV)/bin/python --quiet requirements/tools.lock
	touch $@

tools: $(TOOLS_VENV)/.installed

lock: | $(BIN)/python
	$(UV) pip compile --quiet --python-version 3.11 pyproject.toml -o requirements/runtime.lock
	$(UV) pip compile --quiet --python-version 3.11 pyproject.toml --extra test -o requirements/dev.lock
	$(UV) pip compile --quiet --python-version 3.11 pyproject.toml --extra test --extra bench -o requirements/bench.lock
	$(UV) pip compile --quiet --python-version 3.11 requirements/tools.in -o requirements/tools.lock

demo: venv
	$(BIN)/ccapi-monitor run --imagery demo --auto-confirm --output ./reports --cache ./.ccapi-cache

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

hadolint: venv
	$(BIN)/hadolint Dockerfile

# Headless Chromium renders report.html in the browser test (Debian's package; root installs it).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
		echo "make: chromium not installed; the browser test will be skipped"

test: venv tools browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The benchmarks' peer (odc-stac, xarray, dask) comes from the bench extra, on top of dev.
$(VENV)/.bench-installed: requirements/bench.lock $(VENV)/.installed
	$(UV) pip sync --python $(BIN)/python --quiet requirements/bench.lock
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.run_all

# docs/configuration.md is generated from the CLI and Settings; a test fails when it is stale.
config-docs: venv
	$(BIN)/python -m ccapi_monitor.docsgen docs/configuration.md

clean:
	rm -rf $(VENV) $(TOOLS_VENV) .mypy_cache .pytest_cache .ruff_cache
