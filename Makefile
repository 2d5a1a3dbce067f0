# The project's commands. `make demo` runs the main job, `make test` the whole test suite.
# Everything installs itself: a virtual environment in .venv and Asterisk 22 in a Debian sid
# chroot under ~/.cache/agi-campaign (built once, then reused).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist): the end-to-end tests mostly wait on calls, so two processes
# keep the suite near 12 minutes on 2 cores; TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

.PHONY: install asterisk test demo bench openapi

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

asterisk: install
	$(VENV)/bin/python -m agi_campaign.testing.sandbox build

test: install asterisk
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

demo: install asterisk
	$(VENV)/bin/agi-campaign demo

bench: install asterisk
	$(VENV)/bin/python bench/run.py

# docs/openapi.json: the HTTP API's schema (tests/unit/test_openapi.py fails when it is stale)
openapi: install
	$(VENV)/bin/python -m agi_campaign.api > docs/openapi.json
