# The two commands of the README quick start are `make demo` and `make test`; each does the
# whole set-up first (virtualenv, packages, PostgreSQL/Redis reachable, migrations).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup services migrate demo test lint typecheck unit bench image clean

setup: $(STAMP) services migrate

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,simulators]'
	@rm -f $(VENV)/.installed-* && touch $@

services:
	bash deploy/local/services.sh start

migrate: $(STAMP) services
	$(BIN)/pushcore migrate

demo: setup
	$(BIN)/pushcore demo

lint: $(STAMP)
	$(BIN)/ruff check pushcore workers tests benchmarks
	$(BIN)/ruff format --check pushcore workers tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: setup lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)
	@echo "--- the end-to-end suite again, on the RabbitMQ broker ---"
	PUSHCORE_BROKER=rabbitmq $(BIN)/pytest tests/fanout -k "not demo_campaign" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks

# The container image (deploy/container), built with podman from a debootstrap base.
image: services
	bash deploy/container/build.sh

clean:
	bash deploy/local/services.sh stop
	rm -rf $(VENV) .local .mypy_cache .pytest_cache .ruff_cache
