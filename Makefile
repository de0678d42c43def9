# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEV_ENV := KLANTEN_DEVELOPMENT=$${KLANTEN_DEVELOPMENT:-true} \
	KLANTEN_AUTH_CONFIG=$${KLANTEN_AUTH_CONFIG:-config/dev-auth.yaml} \
	KLANTEN_SUBJECT_ALLOWED_HOSTS=$${KLANTEN_SUBJECT_ALLOWED_HOSTS:-localhost,127.0.0.1}

.PHONY: conformance install run test test-sqlite test-postgres migrate clean vng-conformance

$(BIN)/klanten-api: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/klanten-api

migrate: install
	$(DEV_ENV) $(BIN)/klanten-api migrate

run: install
	@$(DEV_ENV) $(BIN)/klanten-api migrate >/dev/null
	@echo "Klanten API on http://$(HOST):$(PORT)/api/v1/ (docs: http://$(HOST):$(PORT)/api/v1/schema/)"
	@TOKEN=$$($(DEV_ENV) $(BIN)/klanten-api token --client-id klanten-dev --user-id dev --user-representation Ontwikkelaar); \
	 echo "Bearer token (client klanten-dev, all scopes):"; echo "  $$TOKEN"; \
	 echo "Try:"; echo "  curl -H 'Authorization: Bearer $$TOKEN' http://$(HOST):$(PORT)/api/v1/klanten"
	$(DEV_ENV) $(BIN)/klanten-api serve --host $(HOST) --port $(PORT)

# The whole suite; KLANTEN_TEST_DATABASE_URL picks the database (SQLite by default, PostgreSQL in CI too).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# VNG's official Postman conformance collections (Klanten, Contactmomenten; newman) against fresh servers; needs ../shared and npm.
vng-conformance: install
	$(BIN)/python conformance/run_vng.py

# schemathesis CLI against any Klanten API server: make conformance BASE_URL=... CLIENT_ID=... SECRET=...
conformance: install
	$(BIN)/python conformance/run_schemathesis.py

clean:
	rm -rf $(VENV) *.egg-info klanten.sqlite3*

# Benchmark (bench/README.md): own database klanten_bench on KLANTEN_BENCH_PG (default the local PostgreSQL),
# SIZE klanten, `klanten-api serve --workers 2`; results in bench/results/. BENCH_ARGS: e.g. --profile, --reuse.
SIZE ?= 100000
.PHONY: bench
bench: install
	$(BIN)/python bench/run.py --size $(SIZE) $(BENCH_ARGS)
