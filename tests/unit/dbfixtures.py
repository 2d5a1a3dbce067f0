"""Fixture module, not helpers: the `db` fixture, a fresh database for every test, on SQLite
and on PostgreSQL.

One storage test suite runs against every backend (as huey tests its storage classes). The
fixture is parametrised over ``sqlite`` (a file in ``tmp_path``) and ``postgres`` (a database
``acamp_test_<random>`` created on 127.0.0.1:5432 as user ``postgres`` and dropped, with
``FORCE``, afterwards, so connections left open by worker threads do not block the drop).
PostgreSQL params carry ``pytest.mark.postgres``: ``-m "not postgres"`` deselects them.
A PostgreSQL server that cannot be reached FAILS the test (it is part of the suite, not
optional); set ``AGI_CAMPAIGN_TEST_PG`` to another admin URL to use a different server.

tests/unit/conftest.py and tests/hostile/conftest.py register the fixtures; the database
plumbing they share with tests (admin statements, closing) is in tests/unit/support.py.
The fixture's value is the bound Peewee database; ``db_url`` gives its URL.
"""
import secrets
import urllib.parse

import pytest

from agi_campaign import models as models_mod

from tests.unit.support import PG_ADMIN_URL, close_database, pg_admin_execute

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _pg_url(name):
    parts = urllib.parse.urlsplit(PG_ADMIN_URL)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


class TempPostgres:
    """A throwaway PostgreSQL database; `drop()` removes it even with connections open."""

    def __init__(self):
        self.name = "acamp_test_" + secrets.token_hex(6)
        self.url = _pg_url(self.name)
        pg_admin_execute('CREATE DATABASE "%s"' % self.name)

    def drop(self):
        pg_admin_execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.name)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """The URL of a fresh, empty database (no tables yet) for this test."""
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "t.db")
        return
    temp = TempPostgres()
    try:
        yield temp.url
    finally:
        temp.drop()


@pytest.fixture
def db(db_url):
    """A fresh database with all tables, bound to agi_campaign.db.database."""
    database = models_mod.open_database(db_url)
    try:
        yield database
    finally:
        close_database(database)
