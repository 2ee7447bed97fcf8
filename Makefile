# pullgate: two commands set up a fresh Debian machine.
#   make run   venv, install, and the main job on the bundled default policies
#   make test  venv with test tools, Debian packages the tests need (apt-get, when root),
#              then lint, types and every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench proto clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m compileall -q engine
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q engine
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	@scripts/run-demo

test: $(VENV)/.installed
	scripts/debian-deps
	$(BIN)/ruff check engine tests bench scripts
	$(BIN)/ruff format --check engine tests bench scripts
	$(BIN)/mypy
	$(BIN)/mypy --strict scripts/demo.py
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check engine tests bench scripts
	$(BIN)/mypy
	$(BIN)/mypy --strict scripts/demo.py

# The generated stubs are committed; tests/test_proto.py fails when they are stale.
proto: $(VENV)/.installed
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=engine --pyi_out=engine \
		--grpc_python_out=engine proto/pullgate/v1/verifier.proto

# Every benchmark (under 10 minutes); writes bench/results/latest.md. docs/performance.md.
bench: $(VENV)/.installed
	scripts/debian-deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) run .pytest_cache .mypy_cache .ruff_cache
