"""Clocks, passed in wherever "now" is needed, and the conversion to stored times.

Stored times are naive UTC datetimes; in memory they are aware UTC datetimes.
"""
import datetime as _dt
import threading
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


class FakeClock:
    """A clock that moves only when told to; sleep() advances it."""

    def __init__(self, start=None):
        self._now = start or _dt.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self):
        with self._lock:
            return self._now

    def monotonic(self):
        with self._lock:
            return self._mono

    def advance(self, seconds):
        with self._lock:
            self._now += _dt.timedelta(seconds=seconds)
            self._mono += seconds

    def sleep(self, seconds):
        if seconds > 0:
            self.advance(seconds)

    def set(self, when):
        with self._lock:
            delta = (when - self._now).total_seconds()
            self._now = when
            self._mono += max(delta, 0.0)
