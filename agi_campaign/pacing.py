"""Pacing arithmetic: how many calls may start at this instant.

Pure: no I/O; the caller passes counts and elapsed time (``Pacer`` takes a clock function).

Two independent limits, by design:

- **Concurrency** is capped by counting calls in flight: a call counts from the moment it is
  claimed until its result is recorded (or it is reaped). ``allowed_now`` never returns more
  than ``max_channels - in_flight``, so however small ``delay_ms`` is - even 0 - the number of
  calls in flight can never overshoot ``max_channels``. Pacing does not guess call durations.
- **Spacing**: ``delay_ms`` only spaces starts. With ``delay_ms > 0`` at most one call starts
  per ``delay_ms``; with ``delay_ms == 0`` every free channel may be filled at once.
"""


def allowed_now(*, in_flight, max_channels, delay_ms, ms_since_last_start, window_open):
    """Number of calls that may start now (0 when the window is closed, no channel is free, or
    the spacing since the last start is not over). How many numbers are due is not pacing's
    business: the claim takes at most this many of the due ones."""
    if delay_ms < 0:
        raise ValueError("delay_ms must be >= 0, got %r" % (delay_ms,))
    free = max_channels - in_flight
    if not window_open or free <= 0:
        return 0
    if delay_ms == 0:
        return free
    return 1 if wait_ms(delay_ms=delay_ms, ms_since_last_start=ms_since_last_start) == 0 else 0


def wait_ms(*, delay_ms, ms_since_last_start):
    """Milliseconds until the spacing allows the next start (0 if it allows one now)."""
    if delay_ms <= 0 or ms_since_last_start is None:
        return 0.0
    return float(max(0.0, delay_ms - ms_since_last_start))


class Pacer:
    """Remembers when the last call started, on a monotonic ``clock()`` in seconds.

    One Pacer per campaign; not thread-safe (the scheduler ticks a campaign from one thread).
    """

    def __init__(self, clock):
        self._clock = clock
        self._last_start = None

    def _ms_since_last_start(self, at=None):
        if self._last_start is None:
            return None
        return ((self._clock() if at is None else at) - self._last_start) * 1000.0

    def allowed(self, in_flight, max_channels, delay_ms, window_open, at=None):
        """``allowed_now`` at clock time ``at`` (default: now)."""
        return allowed_now(in_flight=in_flight, max_channels=max_channels, delay_ms=delay_ms,
                           ms_since_last_start=self._ms_since_last_start(at),
                           window_open=window_open)

    def started(self, n=1, at=None):
        """Record that ``n`` calls started at clock time ``at`` (default: now); n == 0 records
        nothing. Pass the ``at`` given to ``allowed`` so that starts are spaced exactly."""
        if n > 0:
            self._last_start = self._clock() if at is None else at

    def wait_s(self, delay_ms):
        """Seconds until the spacing allows the next start."""
        return wait_ms(delay_ms=delay_ms, ms_since_last_start=self._ms_since_last_start()) / 1000.0
