"""Fixtures of the integration tests: `dialer` (tests.integration.support.Dialer),
`private_postgres` (tests/integration/pgserver.py), `postgres_url` (a fresh database on the
machine's PostgreSQL) and `browser` (headless Chromium, tests/integration/browser.py); the
Asterisk sandboxes come from tests/conftest.py."""
import pytest

from agi_campaign.db import database
from tests.integration.browser import Browser
from tests.integration.pgserver import private_postgres  # noqa: F401  (pytest fixture)
from tests.integration.support import Dialer
from tests.unit.dbfixtures import TempPostgres
from tests.unit.support import close_database


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


@pytest.fixture
def postgres_url():
    """The URL of a fresh, empty database on 127.0.0.1:5432 (tests/unit/dbfixtures.py
    TempPostgres), dropped afterwards with this process's connections to it closed."""
    temp = TempPostgres()
    try:
        yield temp.url
    finally:
        if database.obj is not None:
            close_database(database.obj)
        temp.drop()
