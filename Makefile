# What README.rst tells people to type: make run, make test, make lint, make bench, make fuzz.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install run test lint bench fuzz clean

install: $(STAMP)

# twistd finds plugins by scanning twisted/plugins on sys.path, so the project is
# installed in "compat" editable mode (a path entry, no import hook), and the dropin
# cache is regenerated afterwards (see README.rst, "Development").
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(VPY) -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	touch $@

run: $(STAMP)
	$(VENV)/bin/twistd -n sipgateway $(ARGS)

test: $(STAMP)
	$(VPY) -m pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check sipgateway twisted tests bench

bench: $(STAMP)
	$(VPY) bench/run.py $(ARGS)

fuzz: $(STAMP)
	SIPGATEWAY_FUZZ_CASES=$${SIPGATEWAY_FUZZ_CASES:-1000000} $(VPY) -m pytest -q tests/test_fuzz.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info bench/out .pytest_cache
