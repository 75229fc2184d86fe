# Coach Plans — `make run` to try it, `make test` to check it. `make help` lists everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv comes from PyPI into .tools/ when it is not on PATH already.
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PYTHON ?= python3
COVERAGE_MIN := 90

.PHONY: help install browser run test lint format bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

install: $(UV) ## install Python and every dependency into .venv (uv sync)
	$(UV) sync --locked --all-packages

run: install ## migrate, then start the API (port 5000) and the bot in mock mode on SQLite
	./scripts/run-dev.sh

test: install browser ## run the whole test suite with coverage per package
	rm -f .coverage .coverage.*
	$(UV) run pytest --cov --cov-report= $(PYTEST_ARGS)
	$(UV) run coverage combine --quiet 2>/dev/null || true
	@for pkg in api bot client; do \
		echo "== coverage of coach_plans_$$pkg (minimum $(COVERAGE_MIN) %)"; \
		$(UV) run coverage report --include="*/coach_plans_$$pkg/*" --fail-under=$(COVERAGE_MIN) || exit 1; \
	done

browser: ## Debian's Chromium for the dashboard's browser test (needs root or sudo)
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: install ## ruff, formatting, mypy --strict and a dependency audit
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	UV=$(UV) ./scripts/audit.sh

bench: install ## benchmarks against baselines in the same run (not part of make test)
	$(UV) run python -m bench $(BENCH_ARGS)

format: install ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

clean: ## remove the virtualenv, caches and local data
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* data
