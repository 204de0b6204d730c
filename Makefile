# VME: the two commands are `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: demo test bench drills deps venv clean

deps:
	@PYTHON=$(PYTHON) sh xmpp-server/install-deps.sh

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test,fast]'
	@touch $(STAMP)

venv: deps $(STAMP)

# mypy first: a type error in the core fails CI in seconds, before the long test run
test: venv
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/python -m vmenergy demo

bench: venv
	$(BIN)/python -m pytest -m slow -p no:cacheprovider
	$(BIN)/python bench/run.py

# issue 16: 10^6 fuzz cases of every parser, then every fault drill on a scenario day (kill -9 of
# each kind of process and of the XMPP server, a lossy network, a full disk); fails if any item
# is lost or a non-project exception is logged. VME_FUZZ_SEED and DRILL_SEED pick other draws.
DRILL_SEED ?= 0
drills: venv
	VME_FUZZ_CASES=$${VME_FUZZ_CASES:-1000000} $(BIN)/python -m pytest -q -p no:cacheprovider tests/hostile/test_fuzz.py
	$(BIN)/python -m vmenergy drill scenarios/drill-day.toml --seed $(DRILL_SEED)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache build *.egg-info
