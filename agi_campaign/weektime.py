"""Week-time conditions: when a campaign may dial.

Example: ``mon-fri 09:00-12:30,14:00-18:00; sat 10:00-13:00``.

Pure: no I/O, "now" is passed in. Decisions:

- Groups are separated by ``;``. A group is a day spec (``mon``..``sun`` or full names, any case;
  ranges ``mon-fri``, wrapping ``fri-mon``; lists ``sat,sun``; ``*`` or ``daily``) followed by
  ``HH:MM-HH:MM`` slots separated by commas. A group with days and no slots means the whole day.
  The same day in several groups gets the union of their slots.
- Slots are half-open ``[start, end)`` in local wall-clock time; ``24:00`` is allowed as an end;
  start must be before end (an overnight slot is written as two slots on two days). Overlapping
  and touching slots are merged, also across midnight and across groups.
- DST: a slot is one stretch of real time, from the first instant the wall clock reads its
  start to just after the first pass of its last second; it never closes and reopens. Slots
  touching across midnight are joined (in wall-clock time) first. A start or end inside a
  spring-forward gap maps to the first real instant after the gap; a slot wholly inside a gap
  does not open that day. A fall-back's repeated hour counts once, on its first pass: on
  2026-11-01 in New York ``00:00-01:00`` closes at 01:00 EDT, ``01:00-02:00`` is open from
  01:00 EDT to the change (one hour, not two), ``00:00-01:30`` closes at 01:30 EDT. A slot
  that runs past the repeated hour (``00:00-03:00``, ``01:30-03:00``) stays open through the
  second pass, even while the clock reads a time before a start inside it (01:00-01:29 EST
  for ``01:30-03:00``).
- ``next_open`` returns ``now`` when open and ``next_close`` returns ``now`` when closed; each
  returns ``None`` when the event never comes (empty condition / always open).
- Empty text is an error: a condition that never opens is almost always a typo.
"""
import dataclasses
import datetime as _dt
import re
from zoneinfo import ZoneInfo

from agi_campaign.errors import WeekTimeError

UTC = _dt.timezone.utc
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {name: i for names in (DAY_NAMES, _FULL_NAMES) for i, name in enumerate(names)}
_FULL_DAY = ((0, 1440),)
_SLOT_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_ITEM_RE = re.compile(r"[^\s,]+")
_DAYS_FIX = "days are mon tue wed thu fri sat sun (ranges like mon-fri)"
_SLOT_FIX = "slots are HH:MM-HH:MM, e.g. 09:00-12:30 (end may be 24:00)"
_LOOKBACK_DAYS = 1      # an interval open at "now" may have started yesterday (local)
_LOOKAHEAD_DAYS = 9     # 8 days ahead plus a day of DST margin
_SECOND = _dt.timedelta(seconds=1)    # zone transitions fall on whole seconds


@dataclasses.dataclass(frozen=True)
class WeekTime:
    """A parsed condition. ``days[0]`` is Monday; each day is a sorted tuple of merged
    ``(start_minute, end_minute)`` slots, minutes since local midnight, end <= 1440."""

    text: str
    days: tuple

    @property
    def always_open(self):
        return all(day == _FULL_DAY for day in self.days)

    @property
    def empty(self):
        return not any(self.days)


def parse_week_time(text):
    """Parse ``text`` into a WeekTime or raise WeekTimeError naming the token and column."""
    if not isinstance(text, str) or not text.strip():
        raise WeekTimeError("week_time %r: empty; write e.g. 'mon-fri 09:00-18:00' or 'daily'"
                            % (text,))
    slots = [[] for _ in range(7)]
    offset = 0
    for group in text.split(";"):
        _parse_group(text, group, offset, slots)
        offset += len(group) + 1
    days = tuple(_merge(day) for day in slots)
    if not any(days):
        raise WeekTimeError("week_time %r: no days given; write e.g. 'mon-fri 09:00-18:00'"
                            % (text,))
    return WeekTime(text=text, days=days)


def _fail(text, problem, column, fix):
    raise WeekTimeError("week_time %r: %s at column %d; %s" % (text, problem, column, fix))


def _parse_group(text, group, offset, slots):
    """Add one ``;``-separated group's slots to ``slots`` (per weekday lists)."""
    days, group_slots = set(), []
    for match in _ITEM_RE.finditer(group):
        item, column = match.group(), offset + match.start() + 1
        if item[0].isdigit():
            if not days:
                _fail(text, "missing days before %r" % item, column,
                      "start each group with days, e.g. 'mon-fri 09:00-18:00' or '* 09:00-18:00'")
            group_slots.append(_parse_slot(text, item, column))
        elif group_slots:
            _fail(text, "day %r after time slots" % item, column,
                  "separate groups with ';', e.g. 'mon-fri 09:00-18:00; sat 10:00-13:00'")
        else:
            days.update(_parse_days(text, item, column))
    for day in days:
        slots[day].extend(group_slots or _FULL_DAY)


def _parse_days(text, item, column):
    if item.lower() in ("*", "daily"):
        return range(7)
    names = item.split("-")
    if len(names) > 2:
        _fail(text, "bad day range %r" % item, column, _DAYS_FIX)
    found, col = [], column
    for name in names:
        if name.lower() not in _DAY_INDEX:
            _fail(text, "unknown day %r" % name, col, _DAYS_FIX)
        found.append(_DAY_INDEX[name.lower()])
        col += len(name) + 1
    first, last = found[0], found[-1]
    return [(first + i) % 7 for i in range((last - first) % 7 + 1)]


def _parse_slot(text, item, column):
    match = _SLOT_RE.match(item)
    if not match:
        _fail(text, "bad time slot %r" % item, column, _SLOT_FIX)
    hs, ms, he, me = (int(g) for g in match.groups())
    start, end = hs * 60 + ms, he * 60 + me
    if hs > 23 or ms > 59 or he > 24 or me > 59 or end > 1440:
        _fail(text, "bad time in slot %r" % item, column,
              "times are 00:00..23:59, and 24:00 as an end")
    if start == end:
        _fail(text, "empty slot %r" % item, column, "the end must be after the start")
    if start > end:
        _fail(text, "overnight slot %r" % item, column,
              "a slot must end after it starts: split it as '22:00-24:00' on one day"
              " and '00:00-06:00' on the next")
    return start, end


def _merge(intervals):
    """Sort and merge overlapping or touching ``(start, end)`` pairs."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _zone(tz):
    return tz if isinstance(tz, _dt.tzinfo) else ZoneInfo(tz)


def _check_now(now):
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("week-time needs an aware datetime for now, got %r" % (now,))
    return now.astimezone(UTC)


def _to_utc(wall, zone, fold):
    """Local wall-clock time (naive) -> aware UTC; a time in a DST gap -> end of the gap."""
    local = wall.replace(tzinfo=zone, fold=fold)
    utc = local.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc
    # Nonexistent: the fold=1 reading is before the transition, the fold=0 reading after it.
    # Bisect in whole seconds (zone transitions fall on whole seconds) for the first instant
    # with the post-transition offset.
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    after = _dt.datetime.fromtimestamp(hi, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _dt.datetime.fromtimestamp(mid, zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return _dt.datetime.fromtimestamp(hi, UTC)


def _end_to_utc(wall, zone):
    """The instant a slot ending (exclusive) at local ``wall`` closes: one second after the
    first pass of its last second, or the end of the gap that last second falls in."""
    last = wall - _SECOND
    utc = _to_utc(last, zone, 0)
    in_gap = utc.astimezone(zone).replace(tzinfo=None) != last
    return utc if in_gap else utc + _SECOND


def _intervals(wt, zone, now_utc):
    """Merged UTC intervals covering local dates from yesterday to 9 days ahead."""
    today = now_utc.astimezone(zone).date()
    return _day_intervals(wt, zone, today - _dt.timedelta(days=_LOOKBACK_DAYS),
                          today + _dt.timedelta(days=_LOOKAHEAD_DAYS))


def _day_intervals(wt, zone, first, last):
    """Merged UTC intervals of the slots of local dates ``first`` to ``last`` (inclusive)."""
    walls = []
    for i in range((last - first).days + 1):
        day = first + _dt.timedelta(days=i)
        midnight = _dt.datetime.combine(day, _dt.time())
        for start, end in wt.days[day.weekday()]:
            walls.append((midnight + _dt.timedelta(minutes=start),
                          midnight + _dt.timedelta(minutes=end)))
    found = [(_to_utc(start, zone, 0), _end_to_utc(end, zone)) for start, end in _merge(walls)]
    # A slot wholly inside a DST gap becomes empty: drop it, or next_open would name an
    # instant at which is_open is False.
    return _merge((start, end) for start, end in found if start < end)


def open_spans(wt, tz, since, until):
    """The stretches of ``[since, until)`` (aware) inside the condition in zone ``tz``: merged
    ``(open, close)`` aware UTC pairs in time order, clipped to the range; one pair for the
    whole range when the condition is always open. For a forecast over days or weeks ahead."""
    since_utc, until_utc = _check_now(since), _check_now(until)
    if since_utc >= until_utc:
        return []
    if wt.always_open:
        return [(since_utc, until_utc)]
    zone = _zone(tz)
    first = since_utc.astimezone(zone).date() - _dt.timedelta(days=_LOOKBACK_DAYS)
    last = until_utc.astimezone(zone).date() + _dt.timedelta(days=1)
    return [(max(start, since_utc), min(end, until_utc))
            for start, end in _day_intervals(wt, zone, first, last)
            if end > since_utc and start < until_utc]


def window_open(week_time, timezone, now):
    """True when a campaign with this (parsed) week-time condition may dial at `now`: always
    when it has none."""
    return week_time is None or is_open(week_time, timezone, now)


def is_open(wt, tz, now):
    """True if ``now`` (aware) falls inside a slot, evaluated in time zone ``tz``."""
    now_utc = _check_now(now)
    if wt.always_open:
        return True
    return any(start <= now_utc < end for start, end in _intervals(wt, _zone(tz), now_utc))


def next_open(wt, tz, now):
    """Aware UTC instant the condition is next open: ``now`` if open, None if it never opens."""
    now_utc = _check_now(now)
    if wt.always_open:
        return now_utc
    for start, end in _intervals(wt, _zone(tz), now_utc):
        if end > now_utc:
            return max(start, now_utc)
    return None


def next_close(wt, tz, now):
    """Aware UTC instant the condition next closes: ``now`` if closed, None if always open."""
    now_utc = _check_now(now)
    if wt.always_open:
        return None
    for start, end in _intervals(wt, _zone(tz), now_utc):
        if start <= now_utc < end:
            return end
    return now_utc



# A bound on next_open_all's search: a week and a day of DST margin. Windows open in every zone
# at some instant repeat weekly, so none found within it means never.
_ALL_HORIZON = _dt.timedelta(days=8)


def is_open_all(wt, zones, now):
    """True if ``now`` is inside the condition in every one of ``zones`` (at least one)."""
    return all(is_open(wt, zone, now) for zone in zones)


def next_open_all(wt, zones, now):
    """The first instant at or after ``now`` (aware UTC) when the condition is open in every one
    of ``zones`` at once (a number whose country spans several zones), or None if it never is.

    Each step moves the candidate to the next opening of a zone that is closed at it; no common
    open instant is skipped, because each is at or after every zone's next opening. Stops at
    the first candidate open everywhere, or past a week (windows repeat weekly).
    """
    now_utc = _check_now(now)
    candidate, horizon = now_utc, now_utc + _ALL_HORIZON
    while candidate <= horizon:
        moved = False
        for zone in zones:
            opens = next_open(wt, zone, candidate)
            if opens is None:
                return None
            if opens > candidate:
                candidate, moved = opens, True
        if not moved:
            return candidate
    return None
