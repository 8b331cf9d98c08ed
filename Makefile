VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: all install run test lint bench clean

all: lint test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/twilio-jobs serve

test: install
	$(PY) tests/ensure_services.py
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check producer worker tests bench celeryconfig.py
	$(VENV)/bin/mypy producer worker

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .twilio-jobs
