# Doorstep — two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app app
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test setup deps assets translations bytecode browser db clean

run: setup db
	$(FLASK) crm seed-demo
	@echo ""
	@echo "Doorstep on http://127.0.0.1:5000 — demo logins (password 'demo'):"
	@echo "  head (sales head) · sup1 sup2 sup3 (supervisors) · agent1 … agent12 (agents)"
	@echo "  fin1 fin2 (finance) · admin (IT)"
	@echo ""
	$(FLASK) run --host 127.0.0.1 --port 5000

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: deps translations assets bytecode

deps: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Map JS/CSS from the npm registry (leaflet-draw), served under /vendor; Leaflet itself comes from PyPI (XStatic).
# `--silent` hides npm's errors too, so a failure is retried once with them shown.
assets: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing Debian's npm for the map assets"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm >/dev/null; }
	npm ci --no-audit --no-fund --silent || npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

translations: deps
	$(BIN)/pybabel compile -d translations -f >/dev/null

# The project's own modules compiled ahead: where PYTHONDONTWRITEBYTECODE is set (as on these
# machines) Python would compile them again at every CLI command and worker start (~0.06 s).
bytecode: deps
	$(BIN)/python -m compileall -q -j 0 app.py crm territories migrations >/dev/null

db: deps
	$(FLASK) db upgrade

# Browser tests drive Debian's chromium through Playwright for Python.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) node_modules instance/doorstep.db* .pytest_cache
