"""Database fixtures for the unit tests (see tests/unit/dbfixtures.py)."""
from tests.unit.dbfixtures import db, db_url  # noqa: F401  (pytest fixtures)
