"""Fixtures of the integration tests: `dialer` (tests.integration.support.Dialer),
`private_postgres` (tests/integration/pgserver.py) and `browser` (headless Chromium,
tests/integration/browser.py); the Asterisk sandboxes come from tests/conftest.py."""
import pytest

from tests.integration.browser import Browser
from tests.integration.pgserver import private_postgres  # noqa: F401  (pytest fixture)
from tests.integration.support import Dialer


@pytest.fixture
def dialer(tmp_path):
    d = Dialer(tmp_path)
    yield d
    d.close()


@pytest.fixture
def browser():
    """Headless Chromium (tests.integration.browser.Browser); fails when it is not installed."""
    b = Browser()
    yield b
    b.close()
