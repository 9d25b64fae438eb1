# The two commands of the README: `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DEMO_OUT ?= out/demo

.PHONY: test imports lint lit pytest venv clean demo

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python test/lint_imports.py
	$(BIN)/ruff check --quiet compiler dialects passes tools
	$(BIN)/python test/typecheck.py
	$(BIN)/lit -sv test
	$(BIN)/pytest -n 2 test/unit

# The package floors of pyproject.toml's [tool.importlinter] (docs/architecture.md).
imports: $(STAMP)
	$(BIN)/python test/lint_imports.py

# Lint (ruff, rules in pyproject.toml) and types (mypy over a staged tree): each a few seconds.
lint: $(STAMP)
	$(BIN)/ruff check compiler dialects passes tools
	$(BIN)/python test/typecheck.py

lit: $(STAMP)
	$(BIN)/lit -sv test

pytest: $(STAMP)
	$(BIN)/pytest -n 2 test/unit

# Build the shipped demo model (a tiny Qwen2 that adds) for AX650 and run "1+1=" on the
# simulator: the emitted .axmodel files answer 2.
demo: $(STAMP)
	$(BIN)/axc-llm-build --input_path demo/qwen2-add --output_path $(DEMO_OUT) \
		--kv_cache_len 15 --prefill_len 8 --chip AX650 -c 2 --prompt "1+1="

clean:
	rm -rf $(VENV) build *.egg-info .typecheck
