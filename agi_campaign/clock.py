"""Clocks, passed in wherever "now" is needed, the conversion to stored times, and how a time
is shown to a person.

Stored times are naive UTC datetimes; in memory they are aware UTC datetimes. People see them
in a campaign's time zone with its UTC offset, to the second (`show_time`).
"""
import datetime as _dt
import time
import zoneinfo

UTC = _dt.timezone.utc


def to_db(value):
    """Aware datetime -> naive UTC datetime for storage (None passes through)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("to_db needs an aware datetime, got a naive one: %r" % (value,))
    return value.astimezone(UTC).replace(tzinfo=None)


def from_db(value):
    """Naive UTC datetime read from the database -> aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _dt.datetime.fromisoformat(value)
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return value.replace(tzinfo=UTC)


def show_time(value, zone="UTC", iso=False):
    """`value` (aware, or naive UTC as stored) in time zone `zone` (an IANA name or a tzinfo),
    to the second, with its UTC offset: ``2026-11-26 13:05:02 -05:00`` for text,
    ``2026-11-26T13:05:02-05:00`` with `iso` (JSON). None gives None."""
    if value is None:
        return None
    tz = zone if isinstance(zone, _dt.tzinfo) else zoneinfo.ZoneInfo(zone or "UTC")
    local = from_db(value).astimezone(tz).replace(microsecond=0)
    if iso:
        return local.isoformat()
    text = local.isoformat(sep=" ")
    return text[:19] + " " + text[19:]


def iso_as_text(iso):
    """ISO text of ``show_time(..., iso=True)`` in show_time's text form, in the offset it
    carries (a campaign's zone); None stays None."""
    if iso is None:
        return None
    value = _dt.datetime.fromisoformat(iso)
    return show_time(value, value.tzinfo)


class SystemClock:
    """The real clock."""

    def now(self):
        return _dt.datetime.now(UTC)

    def monotonic(self):
        return time.monotonic()

    def sleep(self, seconds):
        if seconds > 0:
            time.sleep(seconds)
