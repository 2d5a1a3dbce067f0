"""The `db` fixture: every test gets its own fresh database, on SQLite and on PostgreSQL.

One storage test suite runs against every backend (STYLE.md, after huey). The fixture is
parametrised over ``sqlite`` (a file in ``tmp_path``) and ``postgres`` (a database
``acamp_test_<random>`` created on 127.0.0.1:5432 as user ``postgres`` and dropped, with
``FORCE``, afterwards, so connections left open by worker threads do not block the drop).
PostgreSQL params carry ``pytest.mark.postgres``: ``-m "not postgres"`` deselects them.
A PostgreSQL server that cannot be reached FAILS the test (it is part of the suite, not
optional); set ``AGI_CAMPAIGN_TEST_PG`` to another admin URL to use a different server.

Use it with ``from tests.unit.dbfixtures import db`` or through tests/unit/conftest.py.
The fixture's value is the bound Peewee database; ``db_url`` gives its URL.
"""
import os
import secrets
import urllib.parse

import pytest

from agi_campaign import db as db_mod
from agi_campaign.config import mask_url

PG_ADMIN_URL = os.environ.get("AGI_CAMPAIGN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _pg_admin():
    import psycopg2

    parts = urllib.parse.urlsplit(PG_ADMIN_URL)
    try:
        conn = psycopg2.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                                user=urllib.parse.unquote(parts.username or "postgres"),
                                password=urllib.parse.unquote(parts.password or "") or None,
                                dbname=(parts.path or "/test").lstrip("/") or "postgres",
                                connect_timeout=5)
    except psycopg2.OperationalError as err:
        pytest.fail("PostgreSQL at %s is not reachable (%s): start it or set "
                    "AGI_CAMPAIGN_TEST_PG" % (mask_url(PG_ADMIN_URL), str(err).strip()),
                    pytrace=False)
    conn.autocommit = True
    return conn


def _pg_url(name):
    parts = urllib.parse.urlsplit(PG_ADMIN_URL)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


class TempPostgres:
    """A throwaway PostgreSQL database; `drop()` removes it even with connections open."""

    def __init__(self):
        self.name = "acamp_test_" + secrets.token_hex(6)
        self.url = _pg_url(self.name)
        conn = _pg_admin()
        try:
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE "%s"' % self.name)
        finally:
            conn.close()

    def drop(self):
        conn = _pg_admin()
        try:
            with conn.cursor() as cur:
                cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.name)
        finally:
            conn.close()


def _close(database):
    """Close this thread's connection (and every pooled one, where the database pools)."""
    close_all = getattr(database, "close_all", None)
    if close_all is not None:
        close_all()
    if not database.is_closed():
        database.close()


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
    database = db_mod.open_database(db_url)
    try:
        yield database
    finally:
        _close(database)
