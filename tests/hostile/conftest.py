"""Fixtures for the hostile-input corpus: databases and a work folder (helpers are in
tests/hostile/support.py).

The `db` fixture (SQLite and PostgreSQL) comes from tests/unit/dbfixtures.py; `sqlite_db` is
the SQLite-only variant for the large tables whose behaviour does not depend on the backend.
"""
import pytest

from agi_campaign import models as models_mod

from tests.unit.dbfixtures import db, db_url  # noqa: F401  (pytest fixtures)
from tests.unit.support import close_database


@pytest.fixture
def sqlite_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("db")
    database = models_mod.open_database("sqlite:///" + str(folder / "h.db"))
    try:
        yield database
    finally:
        close_database(database)


@pytest.fixture
def work(tmp_path):
    """An empty folder for the test's input files (the SQLite file lives elsewhere)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder
