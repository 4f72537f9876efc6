# Two commands on a fresh machine:  make report   and   make test
# Each creates .venv and installs what it needs when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARGS   ?=

.PHONY: report quick test venv clean

$(VENV)/.installed: pyproject.toml        # what the report needs
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed   # and the test tools and Ray (--executor ray, its tests)
	$(PY) -m pip install --quiet -e '.[test,ray]'
	touch $@

venv: $(VENV)/.installed

report: venv            ## the whole report in reports/ (standard preset)
	$(PY) generate_report.py --out reports $(ARGS)

quick: venv             ## a fast smoke report in reports/quick
	$(PY) generate_report.py --preset quick --out reports/quick $(ARGS)

test: $(VENV)/.installed-test  ## the linter, then the test suite (what CI runs), on every core (pytest-xdist)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n auto --dist worksteal $(ARGS)   # an idle worker takes tests from a busy one

clean:
	rm -rf reports/* .pytest_cache
