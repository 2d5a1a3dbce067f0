"""Rows for tests, written straight through the models."""
import datetime as dt

from agi_campaign.clock import to_db
from agi_campaign.models import Campaign, Number

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def make_campaign(name="c1", ctype="on_demand", state="ready", server="main"):
    return Campaign.create(name=name, type=ctype, server=server, state=state,
                           state_changed_at=to_db(T0), created_at=to_db(T0))


def phone(i):
    """A valid US number, distinct for each i < 10,000,000 (area codes 202 and 212)."""
    area = ("202", "212", "303", "415")[i // 10_000_000 % 4]
    return "+1%s%07d" % (area, 2_000_000 + i % 8_000_000)


def make_numbers(campaign, count, start=0, due=T0):
    rows = [dict(campaign=campaign.id, phone=phone(i), raw=phone(i), status="pending",
                 attempts=0, next_attempt_at=to_db(due), updated_at=to_db(due), extra="{}")
            for i in range(start, start + count)]
    for i in range(0, len(rows), 500):
        Number.insert_many(rows[i:i + 500]).execute()
    return [r["phone"] for r in rows]
