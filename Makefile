# callpipe: `make run` (the pipeline on the local stack) and `make test` (the whole suite). See README.md.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run test unit lint bench-ingest clean

$(STAMP): pyproject.toml
	@echo "[setup] installing Python dependencies into $(VENV) (first time: a few minutes) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]' > $(VENV)/pip.log 2>&1 || { tail -n 30 $(VENV)/pip.log; echo "error: pip install failed: read $(VENV)/pip.log"; exit 1; }
	@rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)
	@sh deploy/local/install-jemalloc.sh
	@$(BIN)/python -m deploy.local.stack fetch

run: setup
	@$(BIN)/python -m deploy.local.run

test: setup lint
	@$(BIN)/python -m pytest -p no:cacheprovider

unit: $(STAMP)
	@$(BIN)/python -m pytest -p no:cacheprovider tests/unit

lint: $(STAMP)
	@$(BIN)/ruff check --quiet .
	@$(BIN)/mypy --no-error-summary ingest schemas streams sinks broker runtime deploy bench tests
	@$(BIN)/mypy --no-error-summary --strict streams/domain

bench-ingest: setup
	@$(BIN)/python -m bench.ingest

clean:
	rm -rf .data
