"""Calling hours in the callee's local time (issue 11, item 1): the zones of a number, the first
instant a window is open in all of them, the claim that defers numbers outside their hours
without using an attempt, the engine that passes the hours, and status's counts."""
import datetime as dt
import json
from zoneinfo import ZoneInfo

from agi_campaign import campaigns, weektime
from agi_campaign.claim import (MAX_DEFERRED, NEVER_RECHECK, HoursCheck, callee_zones,
                                claim_due)
from agi_campaign.clock import from_db, show_time, to_db
from agi_campaign.models import Attempt, Campaign, DncEntry, Number
from agi_campaign.phone import time_zones
from agi_campaign.status import render, status

from tests.unit.support import T0, campaign_config, engine_for, make_campaign, start_running

UTC = dt.timezone.utc
HOURS = weektime.parse_week_time("mon-sat 08:00-21:00")
# T0 is Tuesday 2026-12-01 09:00 UTC: 04:00 in New York, 01:00 in Los Angeles, 18:00 in Tokyo.
NY, LA, TOKYO = "+12125551300", "+14155551300", "+81312341300"
TOLL_FREE = "+18005550100"          # NANP toll-free: every NANP zone, Guam to Pago Pago
NY_OPENS = dt.datetime(2026, 12, 1, 13, 0, tzinfo=UTC)     # 08:00 EST
LA_OPENS = dt.datetime(2026, 12, 1, 16, 0, tzinfo=UTC)     # 08:00 PST


def brute_next_open_all(wt, zones, now, days=8):
    """The first whole minute (or `now`) open in every zone, by scanning minute by minute."""
    t = now
    end = now + dt.timedelta(days=days)
    while t < end:
        if all(weektime.is_open(wt, z, t) for z in zones):
            return t
        t = (t + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    return None


# ---- zones ------------------------------------------------------------------------------------

def test_phone_time_zones_one_several_and_unknown():
    assert time_zones(NY) == ("America/New_York",)
    assert time_zones(LA) == ("America/Los_Angeles",)
    assert time_zones(TOKYO) == ("Asia/Tokyo",)
    toll_free = time_zones(TOLL_FREE)
    assert {"America/New_York", "America/Los_Angeles", "Pacific/Honolulu",
            "Pacific/Guam"} <= set(toll_free) and len(toll_free) > 20
    assert time_zones("+447911123456") == ("Europe/Guernsey", "Europe/Isle_of_Man",
                                           "Europe/Jersey", "Europe/London")
    assert time_zones("+80012345678") == ()            # universal freephone: no zone


def test_callee_zones_column_overrides_and_campaign_zone_when_unknown():
    assert callee_zones(NY, '{"name": "a"}', "UTC") == ("America/New_York",)
    assert callee_zones(NY, '{"TimeZone": " Asia/Tokyo "}', "UTC") == ("Asia/Tokyo",)
    assert callee_zones(TOLL_FREE, {"tz": "America/Chicago"}, "UTC") == ("America/Chicago",)
    assert callee_zones(NY, '{"timezone": "Mars/Olympus"}', "UTC") == ("America/New_York",)
    assert callee_zones(NY, '{"timezone": ""}', "UTC") == ("America/New_York",)
    assert callee_zones("+80012345678", "{}", "Europe/Paris") == ("Europe/Paris",)


# ---- the first instant open in all zones ----------------------------------------------------

def test_weektime_next_open_all_is_the_first_common_open_instant():
    zones = ("America/New_York", "America/Los_Angeles")
    assert weektime.next_open_all(HOURS, zones, T0) == LA_OPENS
    assert weektime.is_open_all(HOURS, zones, LA_OPENS)
    assert not weektime.is_open_all(HOURS, zones, LA_OPENS - dt.timedelta(seconds=1))
    assert weektime.next_open_all(HOURS, ("Asia/Tokyo",), T0) == T0
    # Saturday 21:00 in New York: Sunday is closed everywhere, Monday 08:00 LA is the first
    sat = dt.datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    assert weektime.next_open_all(HOURS, zones, sat) == dt.datetime(2026, 12, 7, 16, 0,
                                                                    tzinfo=UTC)


def test_weektime_next_open_all_matches_a_minute_scan_for_many_zones():
    zones = time_zones(TOLL_FREE)
    for start in (T0, dt.datetime(2026, 12, 5, 23, 30, tzinfo=UTC),
                  dt.datetime(2026, 3, 8, 5, 0, tzinfo=UTC)):          # US DST starts
        found = weektime.next_open_all(HOURS, zones, start)
        assert found == brute_next_open_all(HOURS, zones, start)
        assert found is not None and weektime.is_open_all(HOURS, zones, found)


def test_weektime_next_open_all_never_when_the_zones_never_overlap():
    short = weektime.parse_week_time("* 09:00-10:00")
    assert weektime.next_open_all(short, ("Pacific/Kiritimati", "Pacific/Pago_Pago"), T0) is None


def test_weektime_next_open_all_across_dst_start():
    # New York springs forward on 2026-03-08; an 08:00 opening is 12:00 UTC from that day
    sunday_night = dt.datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
    wt = weektime.parse_week_time("sun-sat 08:00-21:00")
    assert weektime.next_open_all(wt, ("America/New_York",), sunday_night) == \
        dt.datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_hours_check_kept_answers_equal_fresh_ones():
    """HoursCheck keeps an answer until the first zone closes or the opening it names: asked
    at instants 7 minutes apart over three days (DST-free and across New York's fall-back),
    it answers as next_open_all asked afresh."""
    sets = [("America/Los_Angeles", "America/New_York"), ("Asia/Tokyo",),
            ("America/New_York", "Asia/Tokyo")]
    for start in (T0, dt.datetime(2026, 10, 31, 0, 0, tzinfo=UTC)):
        for step in range(3 * 24 * 60 // 7):
            now = start + dt.timedelta(minutes=7 * step, seconds=step % 60)
            check = HoursCheck(HOURS, "UTC", now)
            for zones in sets:
                assert check.opens(zones) == weektime.next_open_all(HOURS, zones, now), (
                    zones, now)


# ---- the claim --------------------------------------------------------------------------------

def add_numbers(campaign, phones, due=T0, extras=None):
    extras = extras or {}
    for p in phones:
        Number.create(campaign=campaign.id, phone=p, raw=p, status="pending", attempts=0,
                      next_attempt_at=to_db(due),
                      updated_at=to_db(due), extra=json.dumps(extras.get(p, {})))


def number(p):
    return Number.get(Number.phone == p)


def test_claim_defers_numbers_outside_their_hours_without_an_attempt(db):
    camp = make_campaign()
    override = "+12125551301"                      # a New York number said to be in Tokyo
    add_numbers(camp, [NY, LA, TOKYO, TOLL_FREE, "+80012345678", override],
                extras={override: {"TimeZone": "Asia/Tokyo"}})
    claimed = claim_due(camp.id, 10, T0, "main", (), 3, callee_hours=HOURS, timezone="UTC")
    # Tokyo 18:00, +800 in the campaign's UTC 09:00, the override in Tokyo: open
    assert sorted(c.phone for c in claimed) == sorted([TOKYO, "+80012345678", override])
    toll_free_opens = weektime.next_open_all(HOURS, time_zones(TOLL_FREE), T0)
    for p, opens in ((NY, NY_OPENS), (LA, LA_OPENS), (TOLL_FREE, toll_free_opens)):
        row = number(p)
        assert (row.status, row.attempts, from_db(row.next_attempt_at)) == ("pending", 0, opens)
        assert Attempt.select().where(Attempt.number == row).count() == 0
    assert Attempt.select().count() == 3
    # before their window nothing more; at New York's opening exactly New York
    assert claim_due(camp.id, 10, NY_OPENS - dt.timedelta(seconds=1), "main", (), 3,
                     callee_hours=HOURS) == []
    assert [c.phone for c in claim_due(camp.id, 10, NY_OPENS, "main", (), 3,
                                       callee_hours=HOURS)] == [NY]
    assert [c.phone for c in claim_due(camp.id, 10, LA_OPENS, "main", (), 3,
                                       callee_hours=HOURS)] == [LA]
    assert number(LA).attempts == 1 and number(NY).attempts == 1


def test_claim_without_hours_dials_at_any_time(db):
    camp = make_campaign()
    add_numbers(camp, [NY, LA, TOKYO])
    assert len(claim_due(camp.id, 10, T0, "main", (), 3)) == 3


def test_claim_reads_past_closed_numbers_to_fill_the_batch(db):
    """250 closed numbers due first, then open ones: one claim defers the closed and still
    returns n open numbers (the keyset rounds)."""
    camp = make_campaign()
    closed = ["+1212555%04d" % i for i in range(250)]
    add_numbers(camp, closed)
    add_numbers(camp, ["+8131234%04d" % i for i in range(5)], due=T0 + dt.timedelta(seconds=1))
    later = T0 + dt.timedelta(seconds=2)
    claimed = claim_due(camp.id, 3, later, "main", (), 3, callee_hours=HOURS)
    assert [c.phone for c in claimed] == ["+8131234%04d" % i for i in range(3)]
    rows = Number.select().where(Number.phone.in_(closed))
    assert {(r.status, r.attempts, from_db(r.next_attempt_at)) for r in rows} == {
        ("pending", 0, NY_OPENS)}
    assert Number.select().where(Number.status == "pending").count() == 252


def test_claim_defers_at_most_max_deferred_per_claim(db):
    camp = make_campaign()
    add_numbers(camp, ["+1212555%04d" % i for i in range(MAX_DEFERRED + 150)])
    assert claim_due(camp.id, 1, T0, "main", (), 3, callee_hours=HOURS) == []
    waiting = Number.select().where(Number.next_attempt_at == to_db(NY_OPENS)).count()
    assert MAX_DEFERRED <= waiting < MAX_DEFERRED + 150
    assert claim_due(camp.id, 1, T0, "main", (), 3, callee_hours=HOURS) == []
    assert Number.select().where(Number.next_attempt_at == to_db(NY_OPENS)).count() == \
        MAX_DEFERRED + 150


def test_claim_checks_dnc_before_hours(db):
    camp = make_campaign()
    add_numbers(camp, [NY, LA])
    DncEntry.create(list_name="global", phone=NY, added_at=to_db(T0))
    assert claim_due(camp.id, 10, T0, "main", ("global",), 3, callee_hours=HOURS) == []
    assert (number(NY).status, number(LA).status) == ("dnc", "pending")
    assert from_db(number(LA).next_attempt_at) == LA_OPENS


def test_claim_never_open_in_all_zones_is_looked_at_again_later(db):
    camp = make_campaign()
    add_numbers(camp, [TOLL_FREE])
    short = weektime.parse_week_time("* 09:00-10:00")     # never at once from Guam to Samoa
    assert claim_due(camp.id, 10, T0, "main", (), 3, callee_hours=short) == []
    row = number(TOLL_FREE)
    assert (row.status, row.attempts, from_db(row.next_attempt_at)) == (
        "pending", 0, T0 + NEVER_RECHECK)


# ---- the engine passes the campaign's hours ---------------------------------------------------

def test_engine_dials_numbers_only_inside_their_hours(db):
    engine, ami, clock, row, rec = engine_for(count=3, callee_hours="mon-sat 08:00-21:00",
                                              max_channels=10)
    start_running(engine, row)
    engine.dial("c1")                                 # 04:00 in New York: nothing
    assert ami.originates() == []
    assert {(n.status, n.attempts, from_db(n.next_attempt_at)) for n in Number.select()} == {
        ("pending", 0, NY_OPENS)}
    clock.set(NY_OPENS)
    engine.dial("c1")
    assert len(ami.originates()) == 3


# ---- status -------------------------------------------------------------------------------------

def test_status_counts_numbers_outside_their_hours_and_says_when(db):
    cfg = campaign_config(callee_hours="mon-sat 08:00-21:00")
    campaigns.sync_campaigns(cfg, T0)
    camp = Campaign.get(Campaign.name == "c1")
    add_numbers(camp, [NY, LA, TOKYO])
    info = status(cfg, T0)[0]
    assert info["numbers"]["outside_hours"] == 2 and info["numbers"]["pending"] == 3
    assert info["hours_open_next"] == NY_OPENS.isoformat()
    assert "pending 3 (2 outside calling hours, next open %s)" % show_time(NY_OPENS) in \
        render([info])
    campaigns.apply_command("c1", "start", T0)
    campaigns.move(Campaign.get(Campaign.name == "c1"), "running", "test", T0)
    assert status(cfg, T0)[0]["reason"] == "dialing"            # Tokyo is dialable
    claim_due(camp.id, 10, T0, "main", (), 3, callee_hours=cfg.campaigns["c1"].callee_hours)
    info = status(cfg, T0)[0]
    assert info["numbers"]["outside_hours"] == 2 and info["numbers"]["in_flight"] == 1
    assert info["reason"] == ("2 number(s) outside their calling hours (callee_hours "
                              "'mon-sat 08:00-21:00'); the next opens at %s"
                              % show_time(NY_OPENS))
    later = status(cfg, NY_OPENS)[0]
    assert later["numbers"]["outside_hours"] == 1 and later["hours_open_next"] == \
        LA_OPENS.isoformat()


def test_status_without_hours_has_none_outside(db):
    cfg = campaign_config()
    campaigns.sync_campaigns(cfg, T0)
    add_numbers(Campaign.get(Campaign.name == "c1"), [NY, LA])
    info = status(cfg, T0)[0]
    assert info["numbers"]["outside_hours"] == 0 and info["hours_open_next"] is None
    assert "outside calling hours" not in render([info])


def test_callee_hours_test_data_local_times():
    """T0 really is 18:00 in Tokyo and 04:00 in New York (the tests above rely on it)."""
    assert T0.astimezone(ZoneInfo("Asia/Tokyo")).hour == 18
    assert T0.astimezone(ZoneInfo("America/New_York")).hour == 4


def test_callee_zones_a_zone_the_host_cannot_read_adds_the_campaign_zone(monkeypatch):
    from agi_campaign import claim

    monkeypatch.setattr(claim, "time_zones", lambda e164: ("Europe/Nowhere", "Europe/Paris"))
    assert claim.callee_zones("+33142685300", "{}", "America/New_York") == (
        "Europe/Paris", "America/New_York")
    monkeypatch.setattr(claim, "time_zones", lambda e164: ("Europe/Nowhere",))
    assert claim.callee_zones("+33142685300", None, "UTC") == ("UTC",)
