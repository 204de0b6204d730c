# VME: the two commands are `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: demo test bench deps venv clean

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

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache build *.egg-info
