# The project's commands. `make demo` runs the main job, `make test` the whole test suite.
# Everything installs itself: a virtual environment in .venv, Asterisk 22 in a Debian sid
# chroot under ~/.cache/agi-campaign (built once, then reused) and, for the dashboard's browser
# test, Debian's chromium and chromium-driver packages (`make browser`, only when missing).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist): the end-to-end tests mostly wait on calls, so two processes
# keep the suite under 15 minutes on 2 cores (three were no faster: 14:42 vs 14:56 beside
# `make bench`); --dist worksteal lets an idle process take queued tests from the other, so the
# long end-to-end tests do not leave one process finishing alone. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

.PHONY: install asterisk browser test demo bench openapi vendor

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

asterisk: install
	$(VENV)/bin/python -m agi_campaign.testing.sandbox build

# Headless Chromium and its WebDriver for tests/integration/test_dashboard_browser.py: Debian's
# packages, installed with apt-get only when /usr/bin/chromium or /usr/bin/chromedriver is
# missing (`apt-get update` only if the install fails: stale package lists); as root, else
# through `sudo -n` (never waits for a password), else an error naming what to install.
BROWSER_PACKAGES := chromium chromium-driver
APT_INSTALL := env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo "make browser: the browser test needs Debian's $(BROWSER_PACKAGES) packages" \
	    "and this user cannot install them (not root, no password-less sudo);" \
	    "install them as root: apt-get install --no-install-recommends $(BROWSER_PACKAGES)" >&2; \
	    exit 1; fi; \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "make browser: no apt-get here: install Chromium at /usr/bin/chromium and its" \
	      "ChromeDriver at /usr/bin/chromedriver (Debian: $(BROWSER_PACKAGES))" >&2; exit 1; fi; \
	  echo "make browser: installing Debian's $(BROWSER_PACKAGES) (apt-get)"; \
	  $$sudo $(APT_INSTALL) $(BROWSER_PACKAGES) || { $$sudo apt-get update -q && \
	    $$sudo $(APT_INSTALL) $(BROWSER_PACKAGES); } || exit 1; \
	fi

test: install asterisk browser
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

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
