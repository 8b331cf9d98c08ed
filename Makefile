VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672//
# Every integration suite runs again with RabbitMQ as the broker, but those that do not depend
# on the broker, which run once: Redis itself (a Sentinel failover), Prometheus and traces, the
# logs, the CLIs over HTTP, key rotation, a new endpoint's kind (its queue path is the others'),
# the search indexes, inbound consent, send windows and bulk recovery (Redis-side logic over
# the same queue path as the pipeline and campaign suites), so that `make test` stays near 30
# minutes on 2 cores.
ONCE_TESTS ?= $(addprefix tests/integration/, test_failover.py test_metrics.py test_tracing.py \
	test_logs.py test_ops_cli.py test_campaign_cli.py test_rotation.py test_verify.py \
	test_search.py test_consent.py test_send_windows.py test_bulk.py \
	test_bulk_sends.py test_serve.py)
AMQP_TESTS ?= $(filter-out $(ONCE_TESTS),$(sort $(wildcard tests/integration/test_*.py)))

LOCK := requirements.lock

.PHONY: all install run test lint lock bench clean

all: lint test

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/twilio-jobs serve

test: install lint
	$(PY) -m tests.ensure_services
	$(PY) -m pytest -q $(PYTEST_ARGS)
	TEST_BROKER_URL=$(AMQP_URL) $(PY) -m pytest -q -m integration $(AMQP_TESTS) $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check twilio_jobs producer worker celeryconfig.py tests bench
	$(VENV)/bin/mypy twilio_jobs producer worker celeryconfig.py
	$(VENV)/bin/lint-imports

# The newest versions within pyproject.toml's ranges, from a fresh virtualenv, into $(LOCK).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q ".[dev]"
	head -3 $(LOCK) > $(LOCK).new
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -vi '^twilio-jobs' >> $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .twilio-jobs
