# Thin entry points; each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What serving needs and nothing more (no compilers of protos, linters or test tools).
RUN_STAMP := $(VENV)/.installed-runtime

.PHONY: run test proto lint typecheck check pytest clean lock backfill-demo audit chaos bench

$(STAMP): pyproject.toml clients/pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements.lock -e ./clients -e '.[dev]'
	touch $(STAMP)

$(RUN_STAMP): pyproject.toml clients/pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements.lock -e ./clients -e .
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/python -m service

proto: $(STAMP)
	PYTHON=$(BIN)/python scripts/gen_proto.sh clients

lint: $(STAMP)
	$(BIN)/buf lint protos
	BUF=$(BIN)/buf scripts/buf_breaking.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

# 5,000 made-up messages through the real service into a fake Pipedrive (scripts/backfill_demo.py).
backfill-demo: $(STAMP)
	PYTHONPATH=. $(BIN)/python scripts/backfill_demo.py

# Needs the network to the vulnerability database; deliberately not part of `make test`.
audit: $(STAMP)
	BIN=$(BIN) scripts/audit.sh

# Exactly-once under faults: 3 server processes on PostgreSQL, 10% CRM faults, kills, history
# dated 60-90 days back, re-sends after restarts and a burst of one account (tests/chaos/run.py).
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.run --processes 3 --callers 20 --messages 10000 --conversations 200 \
		--fault-rate 0.1 --kills 5 --days-back 60-90 --burst 1000 --burst-conversations 25 --burst-in-flight 200

# Throughput, latency, CRM calls and CPU per message against this machine's gRPC ceiling
# (bench/run.py); writes bench/results.md. A benchmark, not a test: a few minutes, machine-dependent.
bench: $(STAMP)
	$(BIN)/python -m bench.run

# Rewrites requirements.lock from what the current .venv resolved; run after changing a pin.
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
