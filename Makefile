# The front door for people and CI. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Outer limit on the whole test run (seconds); pcscd and every served card die with it.
TEST_TIMEOUT_S ?= 3000

.PHONY: demo test lint typecheck bench sysdeps venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

$(VENV)/.installed-pcsc: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,pcsc]'
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/nfcpay demo

sysdeps:
	bash scripts/install-sysdeps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-pcsc
	$(BIN)/mypy

test: sysdeps $(VENV)/.installed-pcsc lint typecheck
	timeout --signal=TERM --kill-after=30 $(TEST_TIMEOUT_S) $(BIN)/python -m pytest -q

bench: sysdeps $(VENV)/.installed-pcsc
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
