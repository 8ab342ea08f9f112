# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format install services bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) scripts/run_local.py

services:
	bash scripts/ensure_services.sh

test: $(STAMP) services
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the browser and fault tests, for a quick loop.
test-fast: $(STAMP) services
	$(PY) -m pytest -m "not browser and not fault" $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP) services
	$(PY) benchmarks/run_all.py

clean:
	rm -rf var/broker var/cache
