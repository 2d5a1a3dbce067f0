"""Helpers of the hostile-input corpus: its clock, a campaign row, row counts and file lists (to
prove nothing was written), and a valid config file holding a known AMI secret. Test modules
import them from here (and from tests/unit/support.py), never from each other or conftest."""
import datetime as dt
import os
import textwrap

from agi_campaign.models import ALL_MODELS

from tests.unit import support as unit_support

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=unit_support.UTC)
AMI_SECRET = "Zq8-hostile-SECRET-v41ue"


def row_counts():
    """{table: rows} for every model: compare before/after to prove nothing was written."""
    return {model.__name__: model.select().count() for model in ALL_MODELS}


def make_campaign(name="c1"):
    """An on_demand campaign row on server "main", created at NOW."""
    return unit_support.make_campaign(name, at=NOW)


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
