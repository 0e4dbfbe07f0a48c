# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/joinedup demo

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not benchmark"

lint: $(STAMP)
	$(BIN)/ruff check flows sample bench tests

bench: $(STAMP)
	$(BIN)/python -m pytest -m benchmark -s -p no:xdist

clean:
	rm -rf $(VENV) data reports .pytest_cache
