# gameday: `make demo` runs a game day on the built-in demo, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install demo ui ui-down test lint typecheck unit bench-proxy bench-tcp bench-guard bench-kill bench-points clean

$(STAMP): pyproject.toml scripts/install-debs.sh
	./scripts/install-debs.sh prometheus prometheus-pushgateway redis-server postgresql \
	  prometheus-postgres-exporter prometheus-redis-exporter prometheus-alertmanager
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)  ## venv, Python dependencies, Debian packages

demo: $(STAMP)  ## the built-in demo: stack up, a latency ladder until a guard trips, stack down
	./scripts/demo.sh

ui: $(STAMP)  ## the Prefect UI on the demo: blocks, limits, deployments, reaper, a worker
	$(BIN)/chaosctl ui up

ui-down: $(STAMP)  ## stop what `make ui` started (by PID)
	$(BIN)/chaosctl ui down

lint: $(STAMP)  ## ruff, and the import contracts of docs/architecture.md
	$(BIN)/ruff check gameday flows tasks blocks orchestration tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, a test file each at a time: most tests wait on real time (dwells, scrapes), so
# two halves overlap; each worker has its own session demo stack.
unit: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15

test: lint typecheck unit  ## everything CI runs

bench-proxy: $(STAMP)  ## proxy throughput and latency vs nginx and HAProxy
	./scripts/install-debs.sh nginx haproxy wrk
	$(BIN)/python -m benchmarks.bench_proxy

bench-tcp: $(STAMP)  ## TCP mode on PostgreSQL and Redis vs direct and HAProxy in TCP mode
	./scripts/install-debs.sh haproxy postgresql redis-server
	$(BIN)/python -m benchmarks.bench_tcp

bench-guard: $(STAMP)  ## fault onset → detection → gone on the demo, gameday vs Chaos Toolkit
	$(BIN)/python -m benchmarks.bench_guard

bench-kill: $(STAMP)  ## a killed or frozen run: how long its leased fault lives on, per driver
	$(BIN)/python -m benchmarks.bench_kill

bench-points: $(STAMP)  ## a fault point's cost per call it does not fault: no rules, ten rules for others
	$(BIN)/python -m benchmarks.bench_points

clean:
	rm -rf $(VENV) .gameday reports/out .pytest_cache .mypy_cache .ruff_cache
