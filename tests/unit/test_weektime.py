import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from agi_campaign.errors import WeekTimeError
from agi_campaign.weektime import (WeekTime, is_open, next_close, next_open,
                                   parse_week_time)

UTC = dt.timezone.utc
NY = "America/New_York"
ROME = "Europe/Rome"
LONDON = "Europe/London"
SANTIAGO = "America/Santiago"


def local(tz, *args, fold=0):
    return dt.datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)


def utc(*args):
    return dt.datetime(*args, tzinfo=UTC)


# 2026-01-05 is a Monday.

def test_weektime_parse_example():
    wt = parse_week_time("mon-fri 09:00-12:30,14:00-18:00; sat 10:00-13:00")
    assert wt.text == "mon-fri 09:00-12:30,14:00-18:00; sat 10:00-13:00"
    assert wt.days[0] == ((540, 750), (840, 1080))
    assert wt.days[4] == ((540, 750), (840, 1080))
    assert wt.days[5] == ((600, 780),)
    assert wt.days[6] == ()


@pytest.mark.parametrize("text, open_days", [
    ("fri-mon 10:00-11:00", {4, 5, 6, 0}),
    ("sat,sun 10:00-11:00", {5, 6}),
    ("SAT, Sunday 10:00-11:00", {5, 6}),
    ("* 10:00-11:00", set(range(7))),
    ("daily 10:00-11:00", set(range(7))),
    ("Monday-Wednesday 10:00-11:00", {0, 1, 2}),
    ("wed-wed 10:00-11:00", {2}),
])
def test_weektime_parse_day_specs(text, open_days):
    wt = parse_week_time(text)
    assert {i for i, slots in enumerate(wt.days) if slots} == open_days


def test_weektime_parse_day_without_slots_is_whole_day():
    wt = parse_week_time("sat; sun 10:00-12:00")
    assert wt.days[5] == ((0, 1440),)
    assert wt.days[6] == ((600, 720),)


def test_weektime_parse_merges_overlapping_and_touching_slots():
    wt = parse_week_time("mon 09:00-11:00,10:00-12:00,12:00-13:00, 15:00-16:00; mon 15:30-17:00")
    assert wt.days[0] == ((540, 780), (900, 1020))


def test_weektime_parse_allows_24_00_end():
    assert parse_week_time("mon 22:00-24:00").days[0] == ((1320, 1440),)


def test_weektime_is_frozen():
    wt = parse_week_time("mon 09:00-10:00")
    with pytest.raises(AttributeError):
        wt.text = "x"


@pytest.mark.parametrize("text, message", [
    ("mon-fry 09:00-12:00",
     "week_time 'mon-fry 09:00-12:00': unknown day 'fry' at column 5; "
     "days are mon tue wed thu fri sat sun (ranges like mon-fri)"),
    ("mon 09:00-12:00; xyz 10:00-11:00",
     "week_time 'mon 09:00-12:00; xyz 10:00-11:00': unknown day 'xyz' at column 18; "
     "days are mon tue wed thu fri sat sun (ranges like mon-fri)"),
    ("mon-tue-wed", "week_time 'mon-tue-wed': bad day range 'mon-tue-wed' at column 1; "
     "days are mon tue wed thu fri sat sun (ranges like mon-fri)"),
    ("mon 22:00-06:00",
     "week_time 'mon 22:00-06:00': overnight slot '22:00-06:00' at column 5; a slot must end "
     "after it starts: split it as '22:00-24:00' on one day and '00:00-06:00' on the next"),
    ("mon 09:00-09:00", "week_time 'mon 09:00-09:00': empty slot '09:00-09:00' at column 5; "
     "the end must be after the start"),
    ("mon 9-17", "week_time 'mon 9-17': bad time slot '9-17' at column 5; "
     "slots are HH:MM-HH:MM, e.g. 09:00-12:30 (end may be 24:00)"),
    ("mon 09:00-24:30", "week_time 'mon 09:00-24:30': bad time in slot '09:00-24:30' at "
     "column 5; times are 00:00..23:59, and 24:00 as an end"),
    ("mon 24:00-24:00", "week_time 'mon 24:00-24:00': bad time in slot '24:00-24:00' at "
     "column 5; times are 00:00..23:59, and 24:00 as an end"),
    ("mon 09:60-10:00", "week_time 'mon 09:60-10:00': bad time in slot '09:60-10:00' at "
     "column 5; times are 00:00..23:59, and 24:00 as an end"),
    ("09:00-10:00", "week_time '09:00-10:00': missing days before '09:00-10:00' at column 1; "
     "start each group with days, e.g. 'mon-fri 09:00-18:00' or '* 09:00-18:00'"),
    ("mon 09:00-10:00 sat", "week_time 'mon 09:00-10:00 sat': day 'sat' after time slots at "
     "column 17; separate groups with ';', e.g. 'mon-fri 09:00-18:00; sat 10:00-13:00'"),
    ("  ", "week_time '  ': empty; write e.g. 'mon-fri 09:00-18:00' or 'daily'"),
])
def test_weektime_parse_errors_name_token_column_and_fix(text, message):
    with pytest.raises(WeekTimeError) as info:
        parse_week_time(text)
    assert str(info.value) == message


def test_weektime_is_open_at_boundaries():
    wt = parse_week_time("mon-fri 09:00-12:30,14:00-18:00")
    assert not is_open(wt, NY, local(NY, 2026, 1, 5, 8, 59, 59))
    assert is_open(wt, NY, local(NY, 2026, 1, 5, 9, 0))
    assert is_open(wt, NY, local(NY, 2026, 1, 5, 12, 29, 59))
    assert not is_open(wt, NY, local(NY, 2026, 1, 5, 12, 30))     # end is exclusive
    assert is_open(wt, NY, local(NY, 2026, 1, 5, 17, 59))
    assert not is_open(wt, NY, local(NY, 2026, 1, 5, 18, 0))
    assert not is_open(wt, NY, local(NY, 2026, 1, 10, 10, 0))     # Saturday


def test_weektime_is_open_uses_campaign_zone_not_utc():
    wt = parse_week_time("mon 09:00-10:00")
    now = utc(2026, 1, 5, 14, 30)                                  # 09:30 in New York
    assert is_open(wt, NY, now)
    assert is_open(wt, ZoneInfo(NY), now)
    assert not is_open(wt, ROME, now)                              # 15:30 in Rome


def test_weektime_naive_now_is_rejected():
    wt = parse_week_time("mon 09:00-10:00")
    with pytest.raises(ValueError):
        is_open(wt, NY, dt.datetime(2026, 1, 5, 9, 30))


def test_weektime_next_open_is_now_when_open():
    wt = parse_week_time("mon-fri 09:00-18:00")
    now = local(NY, 2026, 1, 5, 10, 0)
    assert next_open(wt, NY, now) == now
    assert next_open(wt, NY, now).tzinfo == UTC


def test_weektime_next_open_across_weekend():
    wt = parse_week_time("mon-fri 09:00-18:00")
    friday_evening = local(NY, 2026, 1, 9, 18, 0)
    assert next_open(wt, NY, friday_evening) == local(NY, 2026, 1, 12, 9, 0)
    assert next_close(wt, NY, local(NY, 2026, 1, 9, 17, 0)) == local(NY, 2026, 1, 9, 18, 0)


def test_weektime_next_open_later_same_day_and_a_week_ahead():
    wt = parse_week_time("mon-fri 09:00-12:30,14:00-18:00")
    assert next_open(wt, NY, local(NY, 2026, 1, 5, 12, 30)) == local(NY, 2026, 1, 5, 14, 0)
    weekly = parse_week_time("mon 09:00-10:00")
    assert next_open(weekly, NY, local(NY, 2026, 1, 5, 10, 0)) == local(NY, 2026, 1, 12, 9, 0)


def test_weektime_next_open_none_when_empty():
    empty = WeekTime(text="", days=((),) * 7)
    now = utc(2026, 1, 5, 12)
    assert next_open(empty, NY, now) is None
    assert not is_open(empty, NY, now)
    assert next_close(empty, NY, now) == now


def test_weektime_next_close_none_when_always_open():
    for text in ("*", "daily", "mon-sun 00:00-24:00", "sat-fri"):
        wt = parse_week_time(text)
        now = utc(2026, 3, 8, 7)
        assert is_open(wt, NY, now)
        assert next_close(wt, NY, now) is None
        assert next_open(wt, NY, now) == now


def test_weektime_next_close_is_now_when_closed():
    wt = parse_week_time("mon 09:00-10:00")
    now = local(NY, 2026, 1, 5, 11, 0)
    assert next_close(wt, NY, now) == now


def test_weektime_24_00_end_joins_next_day_slot():
    wt = parse_week_time("sun 22:00-24:00; mon 00:00-06:00")
    assert is_open(wt, ROME, local(ROME, 2026, 1, 4, 23, 59))
    assert is_open(wt, ROME, local(ROME, 2026, 1, 5, 0, 0))
    assert next_close(wt, ROME, local(ROME, 2026, 1, 4, 22, 30)) == local(ROME, 2026, 1, 5, 6, 0)


def test_weektime_24_00_end_closes_at_midnight():
    wt = parse_week_time("mon 22:00-24:00")
    assert next_close(wt, ROME, local(ROME, 2026, 1, 5, 23, 0)) == local(ROME, 2026, 1, 6, 0, 0)
    assert not is_open(wt, ROME, local(ROME, 2026, 1, 6, 0, 0))


# DST 2026: New York springs forward Sun 8 Mar 02:00 -> 03:00 (07:00 UTC) and falls back
# Sun 1 Nov 02:00 -> 01:00 (06:00 UTC); Rome springs forward Sun 29 Mar 02:00 -> 03:00
# (01:00 UTC) and falls back Sun 25 Oct 03:00 -> 02:00 (01:00 UTC).

def test_weektime_dst_new_york_spring_slots_keep_wall_clock():
    wt = parse_week_time("daily 09:00-10:00")
    assert next_open(wt, NY, utc(2026, 3, 7, 15)) == utc(2026, 3, 8, 13)   # 09:00 EDT
    assert next_open(wt, NY, utc(2026, 3, 7, 12)) == utc(2026, 3, 7, 14)   # 09:00 EST


def test_weektime_dst_new_york_spring_start_in_gap_opens_after_gap():
    wt = parse_week_time("sun 02:30-04:00")
    assert next_open(wt, NY, local(NY, 2026, 3, 8, 0, 0)) == utc(2026, 3, 8, 7)  # 03:00 EDT
    assert not is_open(wt, NY, utc(2026, 3, 8, 6, 59, 59))
    assert is_open(wt, NY, utc(2026, 3, 8, 7))
    assert next_close(wt, NY, utc(2026, 3, 8, 7)) == utc(2026, 3, 8, 8)     # 04:00 EDT


def test_weektime_dst_new_york_spring_end_in_gap_closes_at_gap():
    wt = parse_week_time("sun 01:00-02:30")
    assert next_close(wt, NY, utc(2026, 3, 8, 6, 30)) == utc(2026, 3, 8, 7)


def test_weektime_dst_new_york_autumn_start_uses_first_occurrence():
    wt = parse_week_time("sun 01:30-03:00")
    assert next_open(wt, NY, local(NY, 2026, 11, 1, 0, 0)) == utc(2026, 11, 1, 5, 30)  # EDT
    assert next_close(wt, NY, utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 1, 8)        # 03:00 EST


def test_weektime_dst_new_york_autumn_end_in_repeated_hour_uses_first_occurrence():
    wt = parse_week_time("sun 00:00-01:30")
    assert next_close(wt, NY, utc(2026, 11, 1, 4)) == utc(2026, 11, 1, 5, 30)   # 01:30 EDT
    assert not is_open(wt, NY, utc(2026, 11, 1, 5, 30))                  # 01:30 EDT: past the end
    assert not is_open(wt, NY, local(NY, 2026, 11, 1, 1, 0, fold=1))     # 01:00 EST: counted once


# Fall-back day in New York, 2026-11-01, as the wall clock reads it:
#   04:00-05:00 UTC 00:xx EDT | 05:00-06:00 UTC 01:xx EDT | 06:00-07:00 UTC 01:xx EST (again)
#   | 07:00-08:00 UTC 02:xx EST.

def test_weektime_dst_new_york_autumn_slot_ending_at_repeated_hour_open_one_hour():
    wt = parse_week_time("sun 00:00-01:00")
    assert next_open(wt, NY, utc(2026, 11, 1, 3)) == utc(2026, 11, 1, 4)         # 00:00 EDT
    assert next_close(wt, NY, utc(2026, 11, 1, 4)) == utc(2026, 11, 1, 5)        # 01:00 EDT
    for closed in (utc(2026, 11, 1, 5), utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6),
                   utc(2026, 11, 1, 6, 30)):
        assert not is_open(wt, NY, closed), closed
    assert next_open(wt, NY, utc(2026, 11, 1, 5)) == utc(2026, 11, 8, 5)         # 00:00 EST


def test_weektime_dst_new_york_autumn_repeated_hour_slot_open_on_first_pass_only():
    wt = parse_week_time("sun 01:00-02:00")
    assert next_open(wt, NY, utc(2026, 11, 1, 3)) == utc(2026, 11, 1, 5)         # 01:00 EDT
    assert is_open(wt, NY, utc(2026, 11, 1, 5, 59, 59))
    assert next_close(wt, NY, utc(2026, 11, 1, 5)) == utc(2026, 11, 1, 6)        # the change
    assert not is_open(wt, NY, utc(2026, 11, 1, 6))                              # 01:00 EST
    assert next_open(wt, NY, utc(2026, 11, 1, 6)) == utc(2026, 11, 8, 6)         # next Sunday


def test_weektime_dst_new_york_autumn_slot_through_the_change_stays_open():
    wt = parse_week_time("sun 00:00-03:00")                   # every reading 00:00..02:59 inside
    for hour in (4, 5, 6, 7):
        assert is_open(wt, NY, utc(2026, 11, 1, hour, 30))
    assert next_close(wt, NY, utc(2026, 11, 1, 4)) == utc(2026, 11, 1, 8)        # 03:00 EST


def test_weektime_dst_london_autumn_slot_ending_at_repeated_hour():
    # London falls back Sun 25 Oct 2026 02:00 BST -> 01:00 GMT (01:00 UTC).
    wt = parse_week_time("sun 00:00-01:00, 03:00-04:00")
    assert next_open(wt, LONDON, utc(2026, 10, 24, 22)) == utc(2026, 10, 24, 23)  # 00:00 BST
    assert next_close(wt, LONDON, utc(2026, 10, 24, 23)) == utc(2026, 10, 25, 0)  # 01:00 BST
    assert not is_open(wt, LONDON, utc(2026, 10, 25, 0, 30))                      # 01:30 BST
    assert not is_open(wt, LONDON, utc(2026, 10, 25, 1, 30))                      # 01:30 GMT
    assert next_open(wt, LONDON, utc(2026, 10, 25, 0)) == utc(2026, 10, 25, 3)    # 03:00 GMT


def test_weektime_dst_fall_back_at_midnight_keeps_slot_across_midnight_open():
    # Santiago falls back Sun 5 Apr 2026 00:00 -03 -> Sat 23:00 -04 (03:00 UTC): Saturday's
    # 23:xx repeats. A Saturday slot to 24:00 joined to a Sunday slot is one stretch.
    wt = parse_week_time("sat 22:00-24:00; sun 00:00-06:00")
    assert next_open(wt, SANTIAGO, utc(2026, 4, 4, 12)) == utc(2026, 4, 5, 1)    # 22:00 -03
    assert is_open(wt, SANTIAGO, utc(2026, 4, 5, 3, 30))                         # 23:30 -04
    assert next_close(wt, SANTIAGO, utc(2026, 4, 5, 1)) == utc(2026, 4, 5, 10)   # 06:00 -04
    alone = parse_week_time("sat 22:00-24:00")
    assert next_close(alone, SANTIAGO, utc(2026, 4, 5, 1)) == utc(2026, 4, 5, 3)  # the change


def test_weektime_dst_rome_spring():
    wt = parse_week_time("sun 02:30-04:00; mon-sun 08:00-20:00")
    assert next_open(wt, ROME, utc(2026, 3, 28, 23, 30)) == utc(2026, 3, 29, 1)  # 03:00 CEST
    assert next_close(wt, ROME, utc(2026, 3, 29, 1)) == utc(2026, 3, 29, 2)     # 04:00 CEST
    assert next_open(wt, ROME, utc(2026, 3, 29, 2)) == utc(2026, 3, 29, 6)      # 08:00 CEST
    assert next_close(wt, ROME, utc(2026, 3, 29, 6)) == utc(2026, 3, 29, 18)    # 20:00 CEST
    assert next_open(wt, ROME, utc(2026, 3, 27, 20)) == utc(2026, 3, 28, 7)     # 08:00 CET


def test_weektime_dst_slot_wholly_in_gap_is_skipped_that_day():
    wt = parse_week_time("sun 02:00-02:59")
    nxt = next_open(wt, ROME, utc(2026, 3, 28, 12))
    assert nxt == utc(2026, 4, 5, 0)                                            # 02:00 CEST
    assert is_open(wt, ROME, nxt)


def test_weektime_dst_rome_autumn():
    wt = parse_week_time("sun 02:30-08:00")
    # 02:30 occurs twice; start at the first (CEST, 00:30 UTC), end 08:00 CET (07:00 UTC).
    assert next_open(wt, ROME, utc(2026, 10, 24, 20)) == utc(2026, 10, 25, 0, 30)
    assert next_close(wt, ROME, utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 7)
    whole = parse_week_time("sun")
    assert next_open(whole, ROME, utc(2026, 10, 24, 12)) == utc(2026, 10, 24, 22)  # 00:00 CEST
    assert next_close(whole, ROME, utc(2026, 10, 25, 12)) == utc(2026, 10, 25, 23)  # 25-hour day


