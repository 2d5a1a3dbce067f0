# The project's commands. `make demo` runs the main job, `make test` the whole test suite.
# Everything installs itself: a virtual environment in .venv and Asterisk 22 in a Debian sid
# chroot under ~/.cache/agi-campaign (built once, then reused).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist): the end-to-end tests mostly wait on calls, so two processes
# keep the suite near 12 minutes on 2 cores; TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

.PHONY: install asterisk test demo bench openapi vendor

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

# The dashboard's vendored htmx (agi_campaign/static/vendor/; no CDN: dialers run on closed
# networks): `make vendor` fetches HTMX_VERSION from the npm registry with npm pack.
HTMX_VERSION ?= 2.0.11
VENDOR := agi_campaign/static/vendor
vendor:
	rm -rf .vendor-tmp && mkdir .vendor-tmp
	cd .vendor-tmp && npm pack -q htmx.org@$(HTMX_VERSION) && tar xzf htmx.org-$(HTMX_VERSION).tgz
	cp .vendor-tmp/package/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp .vendor-tmp/package/LICENSE $(VENDOR)/htmx.LICENSE
	echo "htmx.org $(HTMX_VERSION) (npm registry, dist/htmx.min.js and LICENSE)" > $(VENDOR)/VERSIONS
	rm -rf .vendor-tmp
