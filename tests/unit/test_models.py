"""models.create_tables upgrades an older database: the columns a newer version declares are
added to existing tables, on SQLite and PostgreSQL, and a second run changes nothing."""
from agi_campaign.db import database
from agi_campaign.models import create_tables

NEW = ("amd_status", "amd_cause", "digits", "opted_out")


def columns():
    return [column.name for column in database.get_columns("attempt")]


def test_models_create_tables_adds_the_columns_an_older_database_lacks(db):
    for name in NEW:                         # the attempt table as the first release made it
        database.execute_sql("ALTER TABLE attempt DROP COLUMN %s" % name)
    assert not set(NEW) & set(columns())
    create_tables()
    assert set(NEW) <= set(columns())
    create_tables()                          # idempotent
    assert columns().count("digits") == 1
