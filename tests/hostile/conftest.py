"""Fixtures for the hostile-input corpus: databases, a campaign, row counts, a valid config.

The `db` fixture (SQLite and PostgreSQL) comes from tests/unit/dbfixtures.py; `sqlite_db` is
the SQLite-only variant for the large tables whose behaviour does not depend on the backend.
"""
import datetime as dt
import os
import textwrap

import pytest

from agi_campaign import db as db_mod
from agi_campaign.clock import to_db
from agi_campaign.models import ALL_MODELS, Campaign
from tests.unit.dbfixtures import _close, db, db_url  # noqa: F401  (pytest fixtures)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
AMI_SECRET = "Zq8-hostile-SECRET-v41ue"


@pytest.fixture
def sqlite_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("db")
    database = db_mod.open_database("sqlite:///" + str(folder / "h.db"))
    try:
        yield database
    finally:
        _close(database)


@pytest.fixture
def work(tmp_path):
    """An empty folder for the test's input files (the SQLite file lives elsewhere)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def row_counts():
    """{table: rows} for every model: compare before/after to prove nothing was written."""
    return {model.__name__: model.select().count() for model in ALL_MODELS}


def make_campaign(name="c1"):
    return Campaign.create(name=name, type="on_demand", server="main",
                           state_changed_at=to_db(NOW), created_at=to_db(NOW))


def files_in(folder):
    """Every file under folder (relative paths), hidden temporary files included."""
    out = set()
    for root, _, names in os.walk(folder):
        for name in names:
            out.add(os.path.relpath(os.path.join(root, name), folder))
    return out


CONFIG_TEMPLATE = """\
database:
  url: sqlite:///acamp.db
servers:
  main:
    ami: {host: 127.0.0.1, port: 5038, username: agi-campaign, secret: "%(secret)s"}
    dial_template: "PJSIP/{number}@trunk"
dnc_lists:
  global: {description: "opt-outs"}
campaigns:
  c1:
    caller_id: '"Clinic" <12025550100>'
    type: on_demand
    dnc_lists: [global]
    on_connect: {type: message, sounds: [hello-world]}
  sched:
    caller_id: '12025550100'
    type: scheduled
    start: 2026-12-01T09:00
    end: 2026-12-24T18:00
    week_time: "mon-fri 09:00-18:00"
    on_connect: {type: message, sounds: [hello-world]}
"""


def write_config(folder, text=None):
    path = os.path.join(str(folder), "config.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(textwrap.dedent(text) if text is not None
                 else CONFIG_TEMPLATE % {"secret": AMI_SECRET})
    return path
