# gifd compendium — everything starts from a fresh machine with Python 3.11 and pip.
#   make figures   create .venv, install, run every notebook headlessly, write figures/
#   make test      create .venv, install, run pytest on the module and nbval on every notebook
#   make bench     seconds per loss evaluation: our attacks against a minimal loop (build/bench.json)
#   make mutants   mutation testing of the kernels (mutmut; not in CI: about an hour), report in docs/mutation.md
#   make browser-test  opt-in: 01 and 06 in JupyterLab in headless Chromium, the explorer responds (build/browser/)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MUTMUT_VERSION ?= 3.8.1
# make browser-test only (selenium 4.52.0 needs a newer certifi than our package index has)
SELENIUM_VERSION ?= 4.51.0

.PHONY: setup figures test lint strip lab clean bench mutants browser-test

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

figures: $(STAMP)
	$(BIN)/python -m gifd.reproduce figures --committed

test: $(STAMP)
	$(BIN)/python -m gifd.reproduce nbval-prepare build/nbval
	$(BIN)/python -m pytest tests build/nbval --nbval-lax --nbval-current-env

lint: $(STAMP)
	$(BIN)/pip install --quiet -r requirements-lint.txt
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile

bench: $(STAMP)
	$(BIN)/python -m gifd.bench --table figures/bench/cpu.md

# a fresh run each time (cached verdicts would not see edited tests); MUTMUT_JOBS=n runs n mutants at once
mutants: $(STAMP)
	$(BIN)/pip install --quiet mutmut==$(MUTMUT_VERSION)
	rm -rf mutants && mkdir -p build
	start=$$(date +%s); OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mutmut run --max-children $${MUTMUT_JOBS:-1} \
	  && $(BIN)/mutmut results --all true > build/mutants.txt \
	  && $(BIN)/python tools/mutation_report.py build/mutants.txt --seconds $$(( $$(date +%s) - start ))

strip: $(STAMP)
	$(BIN)/python -m gifd.reproduce strip

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

# needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver); no browser is downloaded
browser-test: $(STAMP)
	$(BIN)/pip install --quiet selenium==$(SELENIUM_VERSION)
	GIFD_BROWSER_TEST=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -v tests/test_browser.py

clean:
	rm -rf build
