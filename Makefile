# The two commands of the README: `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lit pytest venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/lit -sv test
	$(BIN)/pytest -n 2 test/unit

lit: $(STAMP)
	$(BIN)/lit -sv test

pytest: $(STAMP)
	$(BIN)/pytest -n 2 test/unit

clean:
	rm -rf $(VENV) build *.egg-info
