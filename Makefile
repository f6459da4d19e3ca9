# The two commands of the README quick start are `make demo` and `make test`; each does the
# whole set-up first (virtualenv, packages, PostgreSQL/Redis reachable, migrations).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# the console's browser assets (htmx, uPlot), pinned in its package-lock.json
CONSOLE := pushcore/console
ASSETS := $(CONSOLE)/node_modules/.package-lock.json

.PHONY: setup services migrate demo test lint typecheck unit bench image screenshots clean

setup: $(STAMP) services $(ASSETS) migrate

$(ASSETS): $(CONSOLE)/package-lock.json | services
	npm ci --prefix $(CONSOLE) --no-audit --no-fund --ignore-scripts
	@touch $@

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,simulators]'
	@rm -f $(VENV)/.installed-* && touch $@

services:
	bash deploy/local/services.sh start

migrate: $(STAMP) services
	$(BIN)/pushcore migrate

# make demo DEMO_ARGS=--keep-running leaves the API (and its web console) running at the end
demo: setup
	$(BIN)/pushcore demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check pushcore workers tests benchmarks
	$(BIN)/ruff format --check pushcore workers tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: setup lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)
	@echo "--- the end-to-end suite again, on the RabbitMQ broker ---"
	PUSHCORE_BROKER=rabbitmq $(BIN)/pytest tests/fanout -k "not demo_campaign" $(PYTEST_ARGS)

# the console's screenshots in docs/console/, taken by its browser tests
screenshots: setup
	CONSOLE_SCREENSHOTS=docs $(BIN)/pytest tests/console/test_browser.py $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks

# The container image (deploy/container), built with podman from a debootstrap base.
image: services
	bash deploy/container/build.sh

clean:
	bash deploy/local/services.sh stop
	rm -rf $(VENV) .local .mypy_cache .pytest_cache .ruff_cache $(CONSOLE)/node_modules
