# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench install browser java clean docs lock

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev,docs]'
	touch $(STAMP)

install: $(STAMP) browser java

browser:  ## Debian's Chromium for the console's browser tests (installed as root, when missing)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq chromium; } || \
		echo "no chromium: the console's browser tests skip (and fail when CI is set)"

java:  ## Debian's Java 17 for the Spark store's tests (a local Spark Connect server), when missing
	@command -v java >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		apt-get install -y -qq openjdk-17-jre-headless; } || \
		echo "no java: the Spark store's tests skip (and fail when CI is set)"

demo: $(STAMP)  ## start the demo federation (three nodes) on embedded defaults
	MATGATE_CONSOLE_DEMO_SIGNIN=true $(BIN)/matgate demo --data-dir .demo

test: lint browser java  ## install everything, lint and type-check, and run the suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy src

docs: $(STAMP)  ## build the documentation site into site/ (strict: a warning fails)
	$(BIN)/pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

lock: $(STAMP)  ## re-resolve uv.lock from pyproject.toml (uv from PyPI into .venv when missing)
	@[ -x $(BIN)/uv ] || $(BIN)/pip install --quiet 'uv>=0.9,<1'
	$(BIN)/uv lock

bench: $(STAMP)
	$(BIN)/python bench/slice.py

clean:
	rm -rf $(VENV) .demo .pytest_cache site
