# Every target refreshes .venv first, so each one works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv gui demo test bench lint clean

# The GUI (gui/) is built into the package (src/evento/server/gui_dist, carried by the wheel) only when its
# sources changed: the built index.html is the stamp; node_modules is refreshed only when the lock file changed.
GUI_DIST := src/evento/server/gui_dist
GUI_SOURCES := $(shell find gui/src -type f 2>/dev/null) gui/index.html gui/package.json gui/vite.config.ts \
	$(wildcard gui/tsconfig*.json)
GUI_MODULES := gui/node_modules/.evento-installed

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(GUI_MODULES): gui/package-lock.json
	cd gui && npm ci --no-audit --no-fund --loglevel=error
	touch $(GUI_MODULES)

$(GUI_DIST)/index.html: $(GUI_MODULES) $(GUI_SOURCES)
	cd gui && npm run build --silent

gui: $(GUI_DIST)/index.html

demo: $(STAMP) gui
	$(BIN)/evento demo $(ARGS)

test: $(STAMP) gui
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(STAMP) gui
	$(BIN)/python -m bench $(ARGS)

lint: $(STAMP) $(GUI_MODULES)
	cd gui && npm run lint --silent && npx tsc -b
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/mypy tests bench

clean:
	rm -rf $(VENV) .bench .evento-demo gui/node_modules $(GUI_DIST) artifacts
