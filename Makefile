# gifd compendium — everything starts from a fresh machine with Python 3.11 and pip.
#   make figures   create .venv, install, run every notebook headlessly, write figures/
#   make test      create .venv, install, run pytest on the module and nbval on every notebook
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup figures test lint strip lab clean

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

figures: $(STAMP)
	$(BIN)/python -m gifd.reproduce figures

test: $(STAMP)
	$(BIN)/python -m gifd.reproduce nbval-prepare build/nbval
	$(BIN)/python -m pytest tests build/nbval --nbval-lax --nbval-current-env

lint: $(STAMP)
	$(BIN)/pip install --quiet -r requirements-lint.txt
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile

strip: $(STAMP)
	$(BIN)/python -m gifd.reproduce strip

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf build
