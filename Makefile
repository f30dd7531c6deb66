PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

var/web-secret:
	mkdir -p var
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48))" > $@

# The daemon and, beside it, the portal (`duban web`, http://127.0.0.1:8080): one command, two
# processes, as in production (duban.service + duban-web.service). Ctrl-C stops both.
run: $(STAMP) var/web-secret
	$(BIN)/duban --config config.toml db upgrade
	$(BIN)/duban --config config.toml web & web=$$!; \
	trap 'kill $$web 2>/dev/null; wait $$web 2>/dev/null' EXIT INT TERM; \
	$(BIN)/duban --config config.toml run

# The suite runs in parallel (pytest-xdist, one worker per core) and ends with its 15 slowest tests.
# `make test WORKERS=0` runs it in one process (for a debugger or print()).
WORKERS ?= auto
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(WORKERS) --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache
