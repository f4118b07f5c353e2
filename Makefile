# The commands the README names. Every target works on a fresh Debian 12 machine as root.
PYTHON ?= python3
VENV ?= .venv
STACK_DIR ?= .stack
BIN := $(VENV)/bin

.PHONY: run test lint validate format bench-stack bench-exporter bench-relay bench-drills bench-leader bench-alert-quality bench-soak clean

## The venv, rebuilt when the dependencies or their pins change.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,stack,render]'
	touch $@

## The main job: the local stack with the demo platform, in the foreground (Ctrl-C stops it).
run: $(VENV)/.installed
	$(BIN)/obsctl stack up --dir $(STACK_DIR) --foreground

## The whole test suite, against real servers it installs and starts itself.
test: $(VENV)/.installed
	$(BIN)/obsctl stack install
	$(BIN)/python scripts/run_pytest.py

lint: $(VENV)/.installed
	$(BIN)/ruff check obsctl tests scripts
	$(BIN)/ruff format --check obsctl tests scripts
	$(BIN)/mypy

## Every config and generated artifact (promtool, amtool, dashboards, compose, staleness).
validate: $(VENV)/.installed
	$(BIN)/obsctl stack install
	$(BIN)/obsctl validate

format: $(VENV)/.installed
	$(BIN)/ruff format obsctl tests scripts
	$(BIN)/ruff check --fix obsctl tests scripts

## Time `stack up` and `stack down` (see docs/BENCHMARKS.md).
bench-stack: $(VENV)/.installed
	$(BIN)/obsctl stack install
	$(BIN)/python scripts/bench_stack.py

## /health latency under load, /metrics scrape time and RSS vs mysqld/redis/blackbox exporters.
bench-exporter: $(VENV)/.installed
	$(BIN)/obsctl stack install
	$(BIN)/python scripts/bench_exporter.py

## Relay intake with the spool on: webhooks/s, latency, nothing lost, memory (docs/BENCHMARKS.md).
bench-relay: $(VENV)/.installed
	$(BIN)/python scripts/bench_relay.py

## Every drill on a fresh stack with the shipped intervals; prints the timings table.
bench-drills: $(VENV)/.installed
	$(BIN)/obsctl stack install
	$(BIN)/python scripts/bench_drills.py

## kill -9 the leader of three sidecars, several rounds: time to a new leader, business counters.
bench-leader: $(VENV)/.installed
	$(BIN)/obsctl stack install
	$(BIN)/python scripts/bench_leader.py

## An hour of a fresh stack with its noise and no fault: every alert but Watchdog is a false alarm.
MINUTES ?= 60
bench-alert-quality: $(VENV)/.installed
	$(BIN)/obsctl stack install
	$(BIN)/python scripts/bench_alert_quality.py --minutes $(MINUTES)

## RSS growth and CPU of the exporter, relay and deadman (and the peers) over an hour of workload.
bench-soak: $(VENV)/.installed
	$(BIN)/obsctl stack install
	$(BIN)/python scripts/bench_soak.py --minutes $(MINUTES)

clean:
	-$(BIN)/obsctl stack down --dir $(STACK_DIR)
	rm -rf $(STACK_DIR)
