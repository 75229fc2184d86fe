# Coach Plans — `make run` to try it, `make test` to check it. `make help` lists everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv comes from PyPI into .tools/ when it is not on PATH already.
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PYTHON ?= python3
COVERAGE_MIN := 90
# Test processes (pytest-xdist); each test file runs whole on one of them. 1 runs them in-process.
TEST_WORKERS ?= 2

.PHONY: help install test-deps env run test lint format bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

install: $(UV) ## install Python and every dependency into .venv (uv sync)
	$(UV) sync --locked --all-packages

run: install ## migrate, then start the API (port API_PORT, 5000) and the bot in mock mode on SQLite
	./scripts/run-dev.sh

env: ## write .env for docker compose from .env.example, with a new random INTERNAL_API_TOKEN
	@if [ -e .env ]; then echo ".env exists; left as it is"; else \
		token=$$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n'); \
		umask 077 && sed "s/^INTERNAL_API_TOKEN=$$/INTERNAL_API_TOKEN=$$token/" .env.example > .env; \
		echo "wrote .env (mode 0600) with a new INTERNAL_API_TOKEN"; fi

test: install test-deps ## run the whole test suite with coverage per package
	rm -f .coverage .coverage.*
	$(UV) run pytest --cov --cov-report= $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)
	$(UV) run coverage combine --quiet 2>/dev/null || true
	@for pkg in api bot client common; do \
		echo "== coverage of coach_plans_$$pkg (minimum $(COVERAGE_MIN) %)"; \
		$(UV) run coverage report --include="*/coach_plans_$$pkg/*" --fail-under=$(COVERAGE_MIN) || exit 1; \
	done

# Debian packages some tests need; each test skips with the reason when its tool is missing
# (CI fails instead). Installed only when missing.
TEST_PACKAGES := chromium:chromium dockerd:docker.io debootstrap:debootstrap systemd-analyze:systemd

test-deps: ## Debian packages the tests use: Chromium, docker.io, debootstrap, systemd (root or sudo)
	@export PATH=$$PATH:/usr/sbin:/sbin; \
	missing=$$(for pair in $(TEST_PACKAGES); do command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; done); \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "apt-get install" $$missing; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
			|| echo "could not install $$missing: the tests that need them will skip (or fail in CI)"; fi

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
