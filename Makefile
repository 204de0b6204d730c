# VME: the two commands are `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: demo test bench bench-10k bench-largest bench-million bench-agents bench-idle drills deps venv clean

deps:
	@PYTHON=$(PYTHON) sh xmpp-server/install-deps.sh

$(STAMP): setup.cfg pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test,fast,grid]'
	@touch $(STAMP)

venv: deps $(STAMP)

# mypy first: a type error in the core fails CI in seconds, before the long test run
test: venv
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/python -m vmenergy demo

# every benchmark (bench/run.py; bench_million and bench_report have their own commands), the
# scale ladder with 1,000 and 2,000 prosumers through a day among them, each rung beside its
# plain-XMPP reference (bench/bench_ladder.py); run.py prints each one's wall time at the end.
# Figures go to bench/RESULTS.md by hand or with --record. The ladder's 2,000 rung is a heavy
# run on a shared machine: the whole of it waits on the same lock as the big targets.
bench: venv
	$(BIN)/python -m pytest -m slow -p no:cacheprovider
	ulimit -n 65536 2>/dev/null || true; flock $(BIGRUN_LOCK) $(BIN)/python bench/run.py

# the ladder's big rungs: 5,000 and 10,000 prosumers (each its own XMPP connection) through a day,
# 2,500 prosumers per process (a process's imports cost ~130 MiB: fewer processes, less memory)
bench-10k: venv
	ulimit -n 65536 2>/dev/null || true; flock $(BIGRUN_LOCK) $(BIN)/python bench/bench_ladder.py --counts 5000,10000 --per-process 2500

# the largest population this box holds: 1,000, 2,000, 5,000, 10,000, 20,000 ... up to LARGEST,
# stopping at the first rung that does not complete or whose projected memory would not fit
LARGEST ?= 50000
bench-largest: venv
	ulimit -n 65536 2>/dev/null || true; flock $(BIGRUN_LOCK) $(BIN)/python bench/bench_ladder.py --up-to $(LARGEST) --per-process 2500

# scenarios/million-devices.toml: 220 FOA agents of 1,000 households each (about 1,000,000 devices)
# under a tree of aggregators, one day (bench/bench_million.py). It needs more memory than most
# machines have (bench/RESULTS.md, "A million devices"): smaller copies with MILLION_ARGS, e.g.
# "--foas 5 --households 545" (50,000 devices). Heavy runs on a shared machine wait on one lock.
BIGRUN_LOCK ?= /tmp/vmenergy-bigrun.lock
MILLION_ARGS ?=
bench-million: venv
	ulimit -n 65536 2>/dev/null || true; flock $(BIGRUN_LOCK) $(BIN)/python bench/bench_million.py $(MILLION_ARGS)

# agents against raw slixmpp on the same server, in the same run: pipelined offer->ack against
# echo, sequential latency against ping-pong, start-up and idle CPU of 1,000 agents
bench-agents: venv
	$(BIN)/python bench/bench_agents.py --kinds prosody,ejabberd

# idle cost alone: 1,000 connected prosumer agents doing nothing, CPU share of one core
bench-idle: venv
	$(BIN)/python bench/bench_agents.py --kinds prosody --parts startup --n 1000

# issue 16: 10^6 fuzz cases of every parser, then every fault drill on a scenario day (kill -9 of
# each kind of process and of the XMPP server, a lossy network, a full disk); fails if any item
# is lost or a non-project exception is logged. VME_FUZZ_SEED and DRILL_SEED pick other draws.
DRILL_SEED ?= 0
drills: venv
	VME_FUZZ_CASES=$${VME_FUZZ_CASES:-1000000} $(BIN)/python -m pytest -q -p no:cacheprovider tests/hostile/test_fuzz.py
	$(BIN)/python -m vmenergy drill scenarios/drill-day.toml --seed $(DRILL_SEED)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache build *.egg-info
