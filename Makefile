VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672//
# The suites run again on RabbitMQ: the core pipeline, the delivery guarantees and webhooks.
# Campaign traffic on RabbitMQ is not verified yet (see the issue notes).
AMQP_TESTS ?= tests/integration/test_pipeline.py tests/integration/test_guarantees.py tests/integration/test_webhooks.py

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
	$(PY) -m tests.ensure_services
	$(PY) -m pytest -q $(PYTEST_ARGS)
	TEST_BROKER_URL=$(AMQP_URL) $(PY) -m pytest -q -m integration $(AMQP_TESTS) $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check producer worker tests bench celeryconfig.py
	$(VENV)/bin/mypy producer worker

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .twilio-jobs
