# One entry point for people and CI. Each target builds what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
TOOLS_VENV ?= .venv-tools
BIN := $(VENV)/bin
UV := $(BIN)/uv
PYTEST_ARGS ?=

.PHONY: demo demo-fanout test lint typecheck hadolint venv tools asl-validator slack-notifier browser lock config-docs report-schema clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv

# The image and CI install from the same lock file; the project itself goes in without deps.
# Bytecode is compiled at install, as in the image: Python otherwise compiles numpy, pandas,
# geopandas... on every start where it cannot write __pycache__ (PYTHONDONTWRITEBYTECODE, a
# read-only venv), about 3 s of each run's start-up on 2 cores (benchmarks/README.md).
$(VENV)/.installed: requirements/dev.lock pyproject.toml | $(BIN)/python
	$(UV) pip sync --python $(BIN)/python --quiet --compile-bytecode requirements/dev.lock
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	$(BIN)/python -m compileall -q ccapi_monitor
	touch $@

venv: $(VENV)/.installed

$(TOOLS_VENV)/.installed: requirements/tools.lock | $(BIN)/python
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(UV) pip sync --python $(TOOLS_VENV)/bin/python --quiet requirements/tools.lock
	touch $@

# asl-validator (npm, pinned by tools/asl-validator/package-lock.json) checks every state machine
# definition; without npm the ASL tests skip and say so.
ASL_VALIDATOR := tools/asl-validator/node_modules/.bin/asl-validator
$(ASL_VALIDATOR): tools/asl-validator/package-lock.json tools/asl-validator/package.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tools/asl-validator --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "make: npm not installed; the asl-validator tests will be skipped"; fi

asl-validator: $(ASL_VALIDATOR)

tools: $(TOOLS_VENV)/.installed $(ASL_VALIDATOR)

lock: | $(BIN)/python
	$(UV) pip compile --quiet --python-version 3.11 pyproject.toml -o requirements/runtime.lock
	$(UV) pip compile --quiet --python-version 3.11 pyproject.toml --extra test -o requirements/dev.lock
	$(UV) pip compile --quiet --python-version 3.11 pyproject.toml --extra test --extra bench -o requirements/bench.lock
	$(UV) pip compile --quiet --python-version 3.11 requirements/tools.in -o requirements/tools.lock

# Two weeks, so this week's figures are new changes against last week's run (a first run
# counts every change of the past year as new), with infrastructure from the synthetic
# extract shipped for the demo (ccapi_monitor/data/README.md). Last week runs once.
# benchmarks/bench_demo.py times this target with DEMO_OUTPUT and DEMO_CACHE in a temporary folder;
# bench_demo_options.py runs its two commands (these variables) on smaller demo archives.
DEMO_DATE ?= $(shell date -u +%F)
DEMO_PREVIOUS = $(shell date -u -d '$(DEMO_DATE) -7 days' +%F)
DEMO_OUTPUT ?= ./reports
DEMO_CACHE ?= ./.ccapi-cache
DEMO_ARGS = --imagery demo --auto-confirm --output $(DEMO_OUTPUT) --cache $(DEMO_CACHE) \
	--infrastructure pbf --osm-pbf ccapi_monitor/data/demo_java.osm.pbf
# Last week's page is never the one opened, so its run makes no image chips.
DEMO_PREVIOUS_ARGS = --run-date $(DEMO_PREVIOUS) --metrics off --report-chips off
demo: venv
	@if [ ! -d $(DEMO_OUTPUT)/weekly/$(DEMO_PREVIOUS) ]; then \
		echo "make: first the demo's previous week, $(DEMO_PREVIOUS) (about half a minute, once)"; \
		$(BIN)/ccapi-monitor run $(DEMO_ARGS) $(DEMO_PREVIOUS_ARGS) >/dev/null 2>&1; \
		rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 2 ] || \
		{ echo "make: the demo run of $(DEMO_PREVIOUS) exited $$rc; run it by hand to see why"; exit 1; }; \
	fi
	$(BIN)/ccapi-monitor run $(DEMO_ARGS) --run-date $(DEMO_DATE)

# Fan-out as the Step Functions Map runs it (docs/scaling.md): SHARDS worker processes on
# shards of the demo regions, then assemble. A failed shard does not stop assemble, which
# reports its regions as failed. `make demo-fanout SHARDS=4 REGIONS_FILE=java_grid.geojson`.
SHARDS ?= 3
REGIONS_FILE ?=
demo-fanout: venv
	@set -u; run_id=demo-fanout-$$(date -u +%Y%m%dT%H%M%SZ); \
	common="--imagery demo --output ./reports --cache ./.ccapi-cache $(if $(REGIONS_FILE),--regions-file $(REGIONS_FILE))"; \
	pids=""; for k in $$(seq 1 $(SHARDS)); do \
		$(BIN)/ccapi-monitor run --auto-confirm $$common --shard $$k/$(SHARDS) --run-id $$run_id & pids="$$pids $$!"; \
	done; \
	for pid in $$pids; do wait $$pid || echo "make: a shard exited $$?; assemble reports its regions as failed" >&2; done; \
	$(BIN)/ccapi-monitor assemble $$common --run-id $$run_id

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
	$(UV) pip sync --python $(BIN)/python --quiet --compile-bytecode requirements/bench.lock
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.run_all

# The Slack notifier's Lambda package, which infra/terraform/slack.tf deploys (byte-stable zip).
slack-notifier: venv
	$(BIN)/python -m ccapi_monitor.slack_notifier build infra/terraform/build/slack_notifier.zip

# docs/configuration.md is generated from the CLI and Settings; a test fails when it is stale.
config-docs: venv
	$(BIN)/python -m tools.docsgen docs/configuration.md

# docs/report.schema.json is generated from the report models; a test fails when it is stale.
report-schema: venv
	$(BIN)/python -m tools.report_schema docs/report.schema.json

clean:
	rm -rf $(VENV) $(TOOLS_VENV) tools/asl-validator/node_modules .mypy_cache .pytest_cache .ruff_cache
