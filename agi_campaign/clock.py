"""Clocks, passed in wherever "now" is needed, and the conversion to stored times.

Stored times are naive UTC datetimes; in memory they are aware UTC datetimes.
"""
import datetime as _dt
import time

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


class SystemClock:
    """The real clock."""

    def now(self):
        return _dt.datetime.now(UTC)

    def monotonic(self):
        return time.monotonic()

    def sleep(self, seconds):
        if seconds > 0:
            time.sleep(seconds)
