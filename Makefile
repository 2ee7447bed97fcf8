# pullgate: two commands set up a fresh Debian machine.
#   make run   venv, install, and the main job on the bundled default policies
#   make test  venv with test tools, then lint, types and every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	@scripts/run-demo

test: $(VENV)/.installed
	$(BIN)/ruff check engine tests bench
	$(BIN)/ruff format --check engine tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check engine tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python bench/judgement.py

clean:
	rm -rf $(VENV) run .pytest_cache .mypy_cache .ruff_cache
