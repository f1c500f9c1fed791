# Every target bootstraps .venv itself, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test lint typecheck unit ui bench bench-corps bench-postgres browser-deps postgres-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP)

## Headless Chromium and CJK fonts for the browser tests (Debian packages; root, or sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto.*cjk"; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

## PostgreSQL server binaries for the tests' throwaway clusters (Debian's package; never started here).
postgres-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

lint: venv
	$(BIN)/ruff check wecom_assets wecom_assets_tests benchmarks
	$(BIN)/ruff format --check wecom_assets wecom_assets_tests benchmarks

typecheck: venv
	$(BIN)/mypy

## The whole suite: lint, types, unit, Dagster, end-to-end CLI and browser tests.
test: venv browser-deps postgres-deps lint typecheck
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/python -m wecom_assets.dev.demo

## The Dagster UI against the sandbox on http://127.0.0.1:3000 (or UI_PORT=...) until Ctrl-C.
ui: venv
	$(BIN)/python -m wecom_assets.dev.demo --ui $(if $(UI_PORT),--port $(UI_PORT))

bench: venv
	$(BIN)/python -m benchmarks.run

## 20 corps of 1,000 users through the run queue, at once and one after another; rows checked.
bench-corps: venv
	$(BIN)/python -m benchmarks.many_corps

## The 20k org's first and repeat sync into DuckDB and into a throwaway PostgreSQL; rows checked.
bench-postgres: venv postgres-deps
	$(BIN)/python -m benchmarks.postgres

clean:
	rm -rf $(VENV) .dagster_home data .pytest_cache .mypy_cache .ruff_cache
