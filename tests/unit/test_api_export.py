"""The API's attempts CSV stream (api._csv_chunks): lazy keyset pages, one page held at a time,
the same rows as `numbers export --attempts`."""
import io

from agi_campaign import api, numbers
from agi_campaign.clock import to_db
from agi_campaign.models import Attempt, Number

from tests.unit.support import T0, make_campaign, make_numbers

NO_FILTER = {"outcome": None, "since": None, "phone_e164": None, "upto": None}


def add_attempts(campaign, count):
    ids = [n.id for n in Number.select(Number.id).where(Number.campaign == campaign)]
    rows = [dict(number=ids[i % len(ids)], campaign=campaign.id, seq=i // len(ids) + 1,
                 token="t%d" % i, server="main", status="ended",
                 outcome=("answered", "busy")[i % 2], created_at=to_db(T0), ended_at=to_db(T0))
            for i in range(count)]
    for i in range(0, count, 500):
        Attempt.insert_many(rows[i:i + 500]).execute()


def test_api_export_streams_one_page_at_a_time(db, monkeypatch):
    campaign = make_campaign()
    make_numbers(campaign, 100)
    add_attempts(campaign, 2500)
    pages = []
    real_page = numbers.attempt_page

    def counting_page(*args, **kwargs):
        rows = real_page(*args, **kwargs)
        pages.append(len(rows))
        return rows
    monkeypatch.setattr(numbers, "attempt_page", counting_page)
    chunks = api._csv_chunks(campaign.id, NO_FILTER, page=1000)
    header = next(chunks)
    first = next(chunks)
    assert pages == [1000]               # lazy: one page read for one chunk
    assert first.count("\n") == 1000
    rest = list(chunks)
    assert pages == [1000, 1000, 500] and [c.count("\n") for c in rest] == [1000, 500]
    expected = io.StringIO()
    numbers.export_attempts(campaign.id, expected)
    assert header + first + "".join(rest) == expected.getvalue()


def test_api_export_filters_and_upto(db):
    campaign = make_campaign()
    make_numbers(campaign, 10)
    add_attempts(campaign, 30)
    last = numbers.last_attempt_id(campaign.id)
    add_attempts(campaign, 4)           # placed after the export began: not in it
    text = "".join(api._csv_chunks(campaign.id, dict(NO_FILTER, upto=last, outcome="busy"),
                                   page=7))
    lines = text.splitlines()[1:]
    assert len(lines) == 15 and all(",busy," in line for line in lines)
