"""agi_campaign.activity on SQLite and PostgreSQL: calls per minute bucketed by the minute
(zeros included, labels in the campaign's zone), calls in flight and the latest attempts with
masked numbers only."""
import datetime as dt

from agi_campaign import activity
from agi_campaign.clock import to_db
from agi_campaign.models import Attempt, Number

from tests.unit.support import T0, make_campaign, make_numbers


def attempt(campaign, number, at, status="ended", outcome="answered", seq=1):
    return Attempt.create(number=number, campaign=campaign, seq=seq, token="t%s" % at,
                          server="main", status=status, outcome=outcome, created_at=to_db(at))


def test_activity_calls_per_minute_buckets_by_minute_in_order(db):
    campaign = make_campaign()
    other = make_campaign("c2")
    make_numbers(campaign, 2)
    make_numbers(other, 1, start=5)
    n1, n2, n3 = Number.select().order_by(Number.id)
    now = T0 + dt.timedelta(minutes=10, seconds=30)          # 09:10:30 UTC
    for at in (T0 + dt.timedelta(minutes=8, seconds=1), T0 + dt.timedelta(minutes=8, seconds=59),
               T0 + dt.timedelta(minutes=10, seconds=5), T0 + dt.timedelta(minutes=2)):
        attempt(campaign, n1, at)
    attempt(other, n3, T0 + dt.timedelta(minutes=9))          # another campaign's
    points = activity.calls_per_minute(campaign.id, now, minutes=5, zone="America/New_York")
    assert points == [("04:06", 0), ("04:07", 0), ("04:08", 2), ("04:09", 0), ("04:10", 1)]
    assert activity.calls_per_minute(campaign.id, now, minutes=3, zone="UTC") == [
        ("09:08", 2), ("09:09", 0), ("09:10", 1)]
    # over 30 minutes the chart starts at the first minute with a call (09:02), unless that
    # leaves fewer than `least` minutes
    trimmed = activity.calls_per_minute(campaign.id, now, minutes=30, zone="UTC", least=5)
    assert trimmed[0] == ("09:02", 1) and trimmed[-1] == ("09:10", 1) and len(trimmed) == 9
    assert len(activity.calls_per_minute(campaign.id, now, minutes=30, least=15)) == 15
    assert len(activity.calls_per_minute(other.id, T0 + dt.timedelta(hours=2), minutes=30,
                                         least=5)) == 5      # nothing in the window


def test_activity_live_and_recent_attempts_are_masked(db):
    campaign = make_campaign()
    phones = make_numbers(campaign, 3)
    numbers = list(Number.select().order_by(Number.id))
    now = T0 + dt.timedelta(seconds=40)
    attempt(campaign, numbers[0], T0, outcome="busy")
    attempt(campaign, numbers[1], T0 + dt.timedelta(seconds=10), status="answered",
            outcome=None)
    attempt(campaign, numbers[2], T0 + dt.timedelta(seconds=20), status="dialing",
            outcome=None)
    live = activity.live_calls(campaign.id, "UTC", now)
    assert [(c["number"], c["status"], c["answered"], c["age_s"]) for c in live] == [
        (phones[2][:5] + "*****" + phones[2][-2:], "dialing", False, 20),
        (phones[1][:5] + "*****" + phones[1][-2:], "answered", True, 30)]
    recent = activity.recent_attempts(campaign.id, "Europe/Paris", now, limit=2)
    assert [r["placed"] for r in recent] == ["2026-12-01 10:00:20 +01:00",
                                             "2026-12-01 10:00:10 +01:00"]
    assert recent[0]["placed_time"] == "10:00:20"
    every = activity.recent_attempts(campaign.id, "UTC", now)
    assert len(every) == 3 and every[-1]["outcome"] == "busy"
    text = repr(live + every)
    assert not any(p in text or p[2:] in text for p in phones)
