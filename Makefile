# Entry points: `make stacks` builds the matrix, `make test` runs every test.
SPEC      ?= stacks.yaml
JOBS      ?=
OUT       ?= build
# What `make stacks` builds: every image this project's CI can build and verify.
# `make stacks STACKS_SELECT=` builds the whole matrix (needs Docker Hub, conda-forge, GitHub).
STACKS_SELECT ?= --only-verified
# Images CI's reference run leaves out for time alone (they need nothing CI cannot reach):
# `make stacks` builds and smoke-tests them after the verified ones, reports in $(OUT)/extra/.
# STACKS_EXTRA= skips them (docs/testing.md).
STACKS_EXTRA ?= minimal-pdf
# Builds trust what this host trusts (corporate TLS proxies included); set CA_CERTS= to turn off.
CA_CERTS  ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
VENV      ?= .venv
PY        := $(VENV)/bin/python
STACKS    := $(VENV)/bin/stacks
PYTEST_ARGS ?=

export STACKS_CA_CERTS := $(CA_CERTS)

.PHONY: stacks test unit check integration lint push bench engine render graph clean-images help

help:
	@echo "make stacks   build every verified image of $(SPEC) and smoke-test it, then STACKS_EXTRA (STACKS_SELECT= for all; reports in $(OUT)/)"
	@echo "make test     unit and integration tests (starts a Docker engine if needed)"
	@echo "make unit     static checks and fast tests only (no Docker)"
	@echo "make check    static checks: ruff, mypy, the import contract (lint-imports), actionlint and zizmor on the workflows"
	@echo "make lint     check stacks.yaml and every fragment (schema, templates, hadolint)"
	@echo "make push     publish the tested images (STACKS_REGISTRY=host/namespace to override)"
	@echo "make bench    benchmarks (bench/)"

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

engine:
	bash scripts/ensure-engine.sh

stacks: $(VENV)/.installed engine
	$(STACKS) build -f $(SPEC) --out $(OUT) $(STACKS_SELECT) $(if $(JOBS),--jobs $(JOBS))
	$(STACKS) test -f $(SPEC) --out $(OUT) $(STACKS_SELECT)
ifneq ($(and $(STACKS_EXTRA),$(filter --only-verified,$(STACKS_SELECT))),)
	$(STACKS) build -f $(SPEC) --out $(OUT)/extra $(STACKS_EXTRA) $(if $(JOBS),--jobs $(JOBS))
	$(STACKS) test -f $(SPEC) --out $(OUT)/extra $(STACKS_EXTRA)
endif

lint: $(VENV)/.installed
	$(STACKS) lint -f $(SPEC)

# Publish tested images (registry from stacks.yaml, or STACKS_REGISTRY=host[:port]/namespace).
push: $(VENV)/.installed engine
	$(STACKS) push -f $(SPEC) --out $(OUT) $(STACKS_SELECT) $(if $(STACKS_REGISTRY),--registry $(STACKS_REGISTRY))

render: $(VENV)/.installed
	$(STACKS) render -f $(SPEC) --out $(OUT)/rendered

graph: $(VENV)/.installed
	$(STACKS) graph -f $(SPEC) --format svg --out $(OUT)/graph.svg

# Static checks: style and bugs (ruff), types (mypy), the layers of builder/ (import-linter),
# the workflows (actionlint, with shellcheck when installed; zizmor's security audits, offline).
WORKFLOWS := $(wildcard .github/workflows/*.yml)
check: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/actionlint -no-color $(WORKFLOWS)
	$(VENV)/bin/zizmor --offline --no-progress --quiet .github/workflows

unit: check
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

integration: $(VENV)/.installed engine
	$(PY) -m pytest tests/integration -q $(PYTEST_ARGS)

test: check engine
	$(PY) -m pytest tests -q -rs $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) bench/plan_bench.py

# Remove every image this tool built (label io.stacks.hash) and dangling layers.
clean-images:
	-docker images -q --filter label=io.stacks.hash | sort -u | xargs -r docker rmi -f
	-docker image prune -f
