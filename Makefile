# The two commands: `make demo` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser test test-fast test-faults test-compose lint demo bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the browser test (no-op when present; never fails the build).
browser:
	sh scripts/install-browser.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint browser
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not browser and not faults"

test-faults: $(STAMP)
	SUPERHERO_FAULTS_LONG=1 $(BIN)/python -m pytest -q -m faults

# The compose stack for real (Docker; installs and starts the engine when root). See README, Production.
test-compose: $(STAMP)
	bash scripts/test-compose.sh

demo: $(STAMP)
	$(BIN)/superhero-dagster demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf data .superhero .pytest_cache .ruff_cache
