"""The completion forecast: when a campaign's last number will be settled (pure: no I/O).

``forecast(cfg, state, progress, now)`` weighs what is known, with "now" passed in:

- the numbers still due (``Progress.due``: pending numbers by attempts made, last outcome and
  when they are due: fresh numbers, retries waiting for their delay, numbers deferred to their
  calling hours) and the attempts in flight (``Progress.in_flight``: their age);
- the campaign's own outcomes (``Progress.observed``: recent ended attempts by the outcome of
  the number's previous attempt, so retried numbers keep the habits they showed: a busy number
  is more likely busy again) and their mean duration, claim to recorded result (the originate,
  ringing, talk and the dialer's and Asterisk's own latencies); a small prior fills outcomes
  not seen yet (``PRIOR_MIX`` until ``PRIOR_UNTIL`` first attempts ended, ``PRIOR_DURATION_S``,
  and "the same outcome again" for retries). With no call ended yet (a scheduled campaign
  before its start, a campaign's first calls) the prior alone gives the forecast; ``rough``
  is true while fewer than ``PRIOR_UNTIL`` attempts have ended;
- the retry rules of the config (``max_attempts``, ``retry_delay_s``, ``retry:`` per outcome
  with ``delay_s`` and ``max``), by the results writer's own rule (lifecycle.RetryPolicy);
- ``max_channels`` and ``delay_ms``: attempts start at most one per ``delay_ms`` and only on a
  free channel, so the throughput is min(max_channels / mean attempt duration, 1000 /
  delay_ms per second); the dialer's tick adds ``gap_s`` to each channel's turnover;
- the calling windows ahead: a scheduled campaign's ``start``, its ``week_time`` in its zone
  (agi_campaign.weektime.open_spans); no call starts while it is closed, retries fall due
  meanwhile and wait.

It is a discrete simulation of expected amounts (a fluid model), not per number: the state of a
number is (attempts made, last outcome, how often it had that outcome), and a step moves the
expected numbers of each state. Its cost does not grow with the numbers: about ``STEPS`` steps
over at most tens of states (a step is widened when more were needed); measured 3 ms for a
1,000,000-number campaign, 7 ms with a week_time and an end five weeks ahead. Calls end at their
start plus their outcome's mean duration; a retry falls due its delay after that (at the step
nearest it); a pending number due later starts no earlier than its due time, at the first step
from it (so a widened step can put a finish later, never earlier). The finish is the instant
after which less than half an attempt is expected to end (``TAIL``): a campaign's last calls
are whole calls.

No finish within ``HORIZON`` (366 days): ``reason`` says why: the start or the first open
window lies beyond it, the numbers fall due beyond it, or the pace is too slow. A scheduled
campaign whose end lies within HORIZON is then simulated up to its end (steps of a
``STEPS``-th of the time to it): ``cannot_finish_before_end`` and ``left_at_end`` come from
that run whether its finish lies beyond the end, beyond the horizon or nowhere.

Approximations (documented in the README): the count of a number's attempts with one outcome
(for a rule's ``max``) is taken as the length of its last run of that outcome (all its attempts
for a number read from the database); callee_hours is
not simulated (numbers the claim deferred to their hours are due when those open, as stored);
pending numbers newly on a Do-Not-Call list count as calls; the end of a scheduled campaign
does not stop the simulation: it reports the numbers expected unsettled at the end (and the
finish it would have after it, when that lies within HORIZON).
"""
import bisect
import dataclasses
import datetime as dt
import heapq
import itertools
import math

from agi_campaign import weektime
from agi_campaign.clock import show_time
from agi_campaign.lifecycle import CampaignState, RetryPolicy

S = CampaignState
ANSWERED = "answered"
# First attempts' outcomes before a campaign shows its own: weighted as PRIOR_WEIGHT attempts
# while fewer than PRIOR_UNTIL first attempts have ended, fading to nothing at PRIOR_UNTIL (a
# prior that stayed would add calls nobody will make: 0.6 % noanswer of a million numbers).
PRIOR_MIX = {"answered": 0.5, "noanswer": 0.3, "busy": 0.1, "unavailable": 0.05,
             "congestion": 0.05}
PRIOR_WEIGHT = 1.0
PRIOR_UNTIL = 20
# A retried number's next outcome: "the same again", weight SAME_WEIGHT attempts.
SAME_WEIGHT = 2.0
# Mean durations (s) of outcomes never observed; noanswer rings for dial_timeout_s.
PRIOR_DURATION_S = {"answered": 30.0, "machine": 20.0}
OTHER_DURATION_S = 2.0
DEFAULT_GAP_S = 0.1     # half the default 200 ms tick: a free channel waits for the next tick
STEPS = 160             # simulation steps the run is aimed at
MAX_STEPS = 2000        # beyond this the step is widened and the run started again
PACE_RUN = 20           # the dialer's pace: its fastest run of this many starts
TAIL = 0.5              # finish: less than this many attempts are expected to end later
HORIZON = dt.timedelta(days=366)
SPAN_CHUNK = dt.timedelta(days=14)
EPS = 1e-6


# A forecast's keys, with nothing forecast.
NONE = {"finishes_at": None, "remaining": None, "reason": None,
        "cannot_finish_before_end": False, "left_at_end": None, "attempts": None,
        "per_minute": None, "limited_by": None, "mean_attempt_s": None, "observed": 0,
        "rough": False}


@dataclasses.dataclass(frozen=True)
class Progress:
    """What the database says about a campaign (agi_campaign.progress reads it).

    ``due``: ``(attempts made, last outcome or None, seconds until due (<= 0: due now),
    count)`` of its pending numbers; ``in_flight``: ``(attempts made before this one, last
    outcome before it or None, age in s, answered: bool)`` of each attempt in flight;
    ``observed``: ``(previous outcome or None for a first attempt, outcome, duration s, age s
    of its start)`` of its recent ended attempts (refused ones left out: no call was placed)."""
    due: tuple = ()
    in_flight: tuple = ()
    observed: tuple = ()

    @property
    def remaining(self):
        return sum(row[3] for row in self.due) + len(self.in_flight)


def _conditional_mean(values, prefix, floor):
    """Mean of the sorted ``values`` above ``floor`` (``prefix``: their running sums), or
    None when none is."""
    i = bisect.bisect_right(values, floor)
    if i == len(values):
        return None
    return (prefix[-1] - prefix[i]) / (len(values) - i)


class Chain:
    """Outcome probabilities and durations, from ended attempts and the attempts in flight.

    ``next(last)`` -> ((outcome, p), ...) for a number whose last outcome was ``last`` (None:
    its first attempt); ``duration_s(outcome)``: its mean duration; ``running(age,
    answered)`` -> ((outcome, p, duration s), ...) of an attempt in flight; ``in_flight``:
    (state, running, age) of each attempt in flight.

    Attempts in flight count too, or the mix would lean to the outcomes that end soonest (at
    20 % of a run, a quick busy has ended, a long answered call has not): an answered one
    counts as answered, one still ringing after ``age`` s as the unanswered outcomes seen to
    last longer than that (noanswer when none was), each with its expected duration given
    that it has lasted ``age`` s (the mean of the longer ones seen; ``age`` when none lasted
    longer: it ends about now)."""

    def __init__(self, observed, in_flight, dial_timeout_s):
        self._dial_timeout_s = dial_timeout_s
        by_outcome = {}
        counts = {}
        for prev, outcome, duration, _ in observed:
            by_outcome.setdefault(outcome, []).append(float(duration or 0.0))
            row = counts.setdefault(prev, {})
            row[outcome] = row.get(outcome, 0.0) + 1.0
        self.observed = len(observed)
        self._sorted = {o: sorted(v) for o, v in by_outcome.items()}
        self._prefix = {o: list(itertools.accumulate(v, initial=0.0))
                        for o, v in self._sorted.items()}
        seconds = {o: self._prefix[o][-1] for o in self._sorted}
        seen = {o: float(len(v)) for o, v in self._sorted.items()}
        self.in_flight = []
        for made, last, age, answered in in_flight:
            running = self.running(age, answered)
            self.in_flight.append((_state(made, last), running, age))
            prev = _state(made, last)[1]
            for outcome, p, d in running:
                row = counts.setdefault(prev, {})
                row[outcome] = row.get(outcome, 0.0) + p
                seconds[outcome] = seconds.get(outcome, 0.0) + p * d
                seen[outcome] = seen.get(outcome, 0.0) + p
        self.counts = counts
        self._mean = {o: seconds[o] / seen[o] for o in seen if seen[o]}
        self._next = {}

    def _prior_s(self, outcome):
        if outcome == "noanswer":
            return self._dial_timeout_s + 1.0
        return PRIOR_DURATION_S.get(outcome, OTHER_DURATION_S)

    def running(self, age, answered):
        """The outcomes of an attempt in flight for ``age`` s (see the class docstring)."""
        if answered:
            candidates = {ANSWERED: 1.0}
        else:
            candidates = {o: float(len(v) - bisect.bisect_right(v, age))
                          for o, v in self._sorted.items() if o != ANSWERED}
            candidates = {o: n for o, n in candidates.items() if n > 0} or {"noanswer": 1.0}
        total = sum(candidates.values())
        out = []
        for outcome, n in sorted(candidates.items()):
            if outcome in self._sorted:     # seen: the mean of the longer ones, or now
                d = _conditional_mean(self._sorted[outcome], self._prefix[outcome], age) or age
            else:
                d = max(self._prior_s(outcome), age)
            out.append((outcome, n / total, d))
        return tuple(out)

    def duration_s(self, outcome):
        """The mean duration of ``outcome`` (ended and expected), else its prior."""
        return self._mean.get(outcome, self._prior_s(outcome))

    def next(self, last):
        if last not in self._next:
            seen = self.counts.get(last, {})
            prior = PRIOR_MIX if last is None else {last: 1.0}
            weight = SAME_WEIGHT if last is not None else PRIOR_WEIGHT * max(
                0.0, 1.0 - sum(seen.values()) / PRIOR_UNTIL)
            total = sum(seen.values()) + weight
            self._next[last] = tuple(sorted(
                (o, (seen.get(o, 0.0) + weight * prior.get(o, 0.0)) / total)
                for o in set(seen) | set(prior)))
        return self._next[last]


def peak_start_rate(ages, k):
    """Starts a second the dialer managed in its busiest run of ``k`` consecutive starts
    (``ages``: seconds since each start), or None when there are fewer than ``k`` (>= 2) or
    such a run took no time: the pace of the dialer, its database and Asterisk themselves."""
    times = sorted(-a for a in ages)
    if k < 2 or len(times) < k:
        return None
    span = min(times[i + k - 1] - times[i] for i in range(len(times) - k + 1))
    return (k - 1) / span if span > 0 else None


def _state(made, last):
    """A number's state from its attempts made and last outcome: (made, last, same), where
    ``same`` (its attempts with that outcome) is taken as all of them; a refused attempt placed
    no call and tells nothing."""
    if last is None or last == "refused":
        return (made, None, 0)
    return (made, last, made)


class _Window:
    """When calls may start, as seconds after ``now``: from the campaign's start on, inside its
    week_time. ``open_in(a, b)``: open seconds of [a, b); ``next_open(t)`` or None."""

    def __init__(self, cfg, now):
        self.now, self.wt, self.tz = now, cfg.week_time, cfg.timezone
        self.first = 0.0
        if cfg.type == "scheduled" and cfg.start is not None:
            self.first = max(0.0, (cfg.start - now).total_seconds())
        self.spans, self.covered, self._k = [], self.first, 0
        self.limit = HORIZON.total_seconds()

    def _extend(self):
        if self.covered >= self.limit:
            return False
        since = self.now + dt.timedelta(seconds=self.covered)
        until = since + SPAN_CHUNK
        if self.wt is None:
            found = [(since, until)]
        else:
            found = weektime.open_spans(self.wt, self.tz, since, until)
        for a, b in found:
            a, b = ((x - self.now).total_seconds() for x in (a, b))
            if self.spans and a <= self.spans[-1][1] + EPS:
                self.spans[-1] = (self.spans[-1][0], b)
            else:
                self.spans.append((a, b))
        self.covered = (until - self.now).total_seconds()
        return True

    def _from(self, t):
        """Index of the first span ending after t (spans before it are dropped from view)."""
        while True:
            while self._k < len(self.spans) and self.spans[self._k][1] <= t:
                self._k += 1
            if self._k < len(self.spans) or not self._extend():
                return self._k

    def open_in(self, a, b):
        while self.covered < b and self._extend():
            pass
        k, total = self._from(a), 0.0
        while k < len(self.spans) and self.spans[k][0] < b:
            total += min(b, self.spans[k][1]) - max(a, self.spans[k][0])
            k += 1
        return total

    def next_open(self, t):
        k = self._from(t)
        return max(t, self.spans[k][0]) if k < len(self.spans) else None


@dataclasses.dataclass
class Run:
    """One simulation's result (seconds after now). ``finish_s`` is None when it ``stopped``:
    at ``"steps"`` (more than MAX_STEPS open steps: the caller widens the step), the
    ``"horizon"`` (nothing finishes within HORIZON: no window left, or the work goes on) or
    the ``"end"`` (``until_end``: the end came first)."""
    finish_s: float = None
    attempts: float = 0.0
    busy_s: float = 0.0          # expected channel-seconds of the attempts still to make
    left_at_end: float = 0.0     # numbers expected unsettled at end_s
    stopped: str = None


def simulate(cfg, chain, progress, now, step_s, gap_s=DEFAULT_GAP_S, end_s=None,
             spacing_s=None, until_end=False):
    """Run the expected amounts forward in steps of ``step_s`` -> Run (see its ``stopped``).
    ``spacing_s``: the least time between two starts (default: delay_ms); ``until_end``: stop
    at ``end_s`` (the campaign's end) with the numbers left then, unless all finish before it.

    Numbers due later enter at the first step that starts at or after their due time (never
    earlier, whatever the step); a retry enters at the step nearest its due time."""
    window = _Window(cfg, now)
    policy = RetryPolicy.of(cfg)
    spacing = cfg.delay_ms / 1000.0 if spacing_s is None else spacing_s
    channels = float(cfg.max_channels)
    backlog = {}                  # state (attempts, last outcome, same) -> expected numbers
    arrivals, keys = {}, []       # step -> {state: numbers}; heap of steps
    releases = {}                 # step -> channels freed
    ends = []                     # (end s, expected attempts)
    run = Run()
    in_flight = 0.0
    left_checked = end_s is None
    outcomes_of = {}

    def left():
        return sum(backlog.values()) + sum(sum(a.values()) for a in arrivals.values())

    def arrive(step, state, mass):
        slot = arrivals.get(step)
        if slot is None:
            slot = arrivals[step] = {}
            heapq.heappush(keys, step)
        slot[state] = slot.get(state, 0.0) + mass

    def branches(state):
        """((p, duration, next state or None, retry delay s), ...) of a number in ``state``,
        and its attempt's mean duration."""
        found = outcomes_of.get(state)
        if found is None:
            made, last, same = state
            out = []
            for outcome, p in chain.next(last):
                d = chain.duration_s(outcome)
                now_same = same + 1 if outcome == last else 1
                delay = policy.retry_after_s(outcome, made + 1, now_same)
                out.append((p, d, None if delay is None else (made + 1, outcome, now_same),
                            delay))
            found = outcomes_of[state] = (out, sum(p * d for p, d, _, _ in out))
        return found

    def start(state, mass, at_s, step, out=None):
        """``mass`` numbers of ``state`` start an attempt at ``at_s``, whose outcomes are
        ``out`` ((outcome, p, duration s from at_s), ...: an attempt in flight) or the chain's.
        Its channel is freed at its end plus ``gap_s``, on the steps around it in the
        proportions that keep the mean holding time exact."""
        nonlocal in_flight
        moves, mean_d = branches(state)
        if out is not None:
            made, last, same = state
            moves = []
            for outcome, p, d in out:
                now_same = same + 1 if outcome == last else 1
                delay = policy.retry_after_s(outcome, made + 1, now_same)
                moves.append((p, d, None if delay is None else (made + 1, outcome, now_same),
                              delay))
            mean_d = sum(p * d for p, d, _, _ in moves)
        for p, d, nxt, delay in moves:
            m = mass * p
            if m < EPS:
                continue
            end = at_s + d
            ends.append((end, m))
            held = (d + gap_s) / step_s
            whole = int(held)
            if whole < 1:
                releases[step + 1] = releases.get(step + 1, 0.0) + m
            else:
                frac = held - whole
                releases[step + whole] = releases.get(step + whole, 0.0) + m * (1.0 - frac)
                releases[step + whole + 1] = releases.get(step + whole + 1, 0.0) + m * frac
            if nxt is not None:
                arrive(max(step + 1, round((end + delay) / step_s)), nxt, m)
        in_flight += mass
        run.attempts += mass
        run.busy_s += mass * mean_d

    for state, out, age in chain.in_flight:
        start(state, 1.0, 0.0, 0, [(o, p, max(d - age, 0.0)) for o, p, d in out])
    for made, last, due_s, count in progress.due:
        arrive(max(0, math.ceil(due_s / step_s - EPS)), _state(made, last), float(count))

    step, steps, allowance = 0, 0, 0.0
    while True:
        while keys and keys[0] <= step:
            for state, mass in arrivals.pop(heapq.heappop(keys)).items():
                backlog[state] = backlog.get(state, 0.0) + mass
        in_flight -= sum(releases.pop(s) for s in [s for s in releases if s <= step])
        in_flight = max(in_flight, 0.0)
        waiting = sum(backlog.values())
        t = step * step_s
        if not left_checked and t >= end_s:
            run.left_at_end, left_checked = left(), True
            if until_end:
                run.stopped = "end"
                return run
        if waiting < EPS:
            if not keys:
                break       # the calls in flight have their ends and retries already
            step = keys[0]
            continue
        open_s = window.open_in(t, t + step_s)
        if open_s <= 0:
            nxt = window.next_open(t)
            if nxt is None:
                if until_end and not left_checked:
                    run.left_at_end, run.stopped = left(), "end"
                else:
                    run.stopped = "horizon"
                return run
            step = max(step + 1, int(nxt // step_s))
            continue
        steps += 1
        if steps > MAX_STEPS:
            run.stopped = "steps"
            return run
        mean_d = sum(m * branches(s)[1] for s, m in backlog.items()) / waiting + gap_s
        turns = step_s / mean_d           # > 1: a channel serves several calls in a step
        free = max(channels - in_flight, 0.0) * max(1.0, turns) * open_s / step_s
        can = min(waiting, free)
        if spacing > 0:
            allowance = min(allowance + open_s / spacing, open_s / spacing + 1.0)
            can = min(can, allowance)
            allowance -= can
        if can > EPS:
            share = can / waiting
            # the starts spread over the part of the step they fill: taken at its middle
            spread = max(open_s * can / free if turns > 1 else 0.0, can * spacing)
            t_start = (window.next_open(t) if open_s < step_s else t) + min(spread,
                                                                            open_s) / 2
            for state in list(backlog):
                mass = backlog[state] * share
                backlog[state] -= mass
                start(state, mass, t_start, step)
            backlog = {s: m for s, m in backlog.items() if m > EPS}
        step += 1
    ends.sort()
    later = 0.0
    for end, mass in reversed(ends):
        later += mass
        if later >= TAIL:
            run.finish_s = end
            break
    else:
        run.finish_s = ends[-1][0] if ends else 0.0
    return run


def _spacing(cfg, progress):
    """(least seconds between starts, what sets it): delay_ms, or the dialer's own pace
    (peak_start_rate over runs of min(max_channels, PACE_RUN) starts) when slower."""
    spacing, by = cfg.delay_ms / 1000.0, "delay_ms"
    ages = [row[3] for row in progress.observed] + [row[2] for row in progress.in_flight]
    rate = peak_start_rate(ages, min(cfg.max_channels, PACE_RUN))
    if rate is not None and 1.0 / rate > spacing:
        spacing, by = 1.0 / rate, "start rate"
    return spacing, by


def _first_step(cfg, chain, progress, spacing):
    """A step aimed at STEPS steps over the open time the work needs: the channel-seconds (or
    the spacing) of the calls to make, plus the retry delays of a number's chain of attempts."""
    first = chain.next(None)
    mean_d = sum(p * chain.duration_s(o) for o, p in first) + DEFAULT_GAP_S
    per_s = max(cfg.max_channels, EPS) / mean_d
    if spacing > 0:
        per_s = min(per_s, 1.0 / spacing)
    calls = progress.remaining * max(1.0, min(cfg.max_attempts, 2.0))
    delays = max([cfg.retry_delay_s] + [r.delay_s for r in cfg.retry]) * (cfg.max_attempts - 1)
    longest = max(max(row[2] for row in progress.due) if progress.due else 0.0, 0.0)
    return max((calls / per_s + delays + longest + mean_d) / STEPS, 0.05)


def _no_finish(cfg, progress, now):
    """Why no finish lies within HORIZON: the start, the first open window, the numbers' due
    times or the pace."""
    window, days = _Window(cfg, now), HORIZON.days
    if window.first >= window.limit:
        return "its start %s is more than %d days ahead" % (show_time(cfg.start, cfg.timezone),
                                                            days)
    if window.next_open(window.first) is None:
        return "its week_time %r opens no calling window within %d days" % (
            cfg.week_time.text, days)
    soonest = min((row[2] for row in progress.due), default=0.0)
    if not progress.in_flight and soonest >= window.limit:
        return "its numbers fall due more than %d days ahead" % days
    return "no finish within %d days at this pace" % days


def forecast(cfg, state, progress, now, gap_s=DEFAULT_GAP_S):
    """The forecast of campaign ``cfg`` (a config.CampaignConfig) in ``state`` (a CampaignState
    value) at ``now`` (aware), from ``progress`` (Progress):

    ``finishes_at`` (ISO text in the campaign's zone, or None), ``remaining`` (numbers still to
    settle: pending and in flight), ``reason`` (None, or why there is no forecast),
    ``cannot_finish_before_end`` (a scheduled campaign whose ``end`` comes first),
    ``left_at_end`` (numbers expected unsettled at that end, else None), ``attempts`` (attempts
    expected still to make, in flight included), ``per_minute`` (attempts a minute while the
    window is open: the throughput used), ``limited_by`` (``max_channels``, ``delay_ms`` or
    ``start rate``: the dialer's own pace), ``mean_attempt_s`` (mean duration of those
    attempts), ``observed`` (ended attempts the mix and durations come from), ``rough``
    (fewer than PRIOR_UNTIL of them: the prior fills in; none: the prior alone)."""
    remaining = progress.remaining
    out = dict(NONE, remaining=remaining)
    st = S(state)
    scheduled = cfg.type == "scheduled"
    out["observed"] = len(progress.observed)
    if remaining == 0:
        out["reason"] = "no number left to call"
    elif st in (S.PAUSED, S.COMPLETED):
        out["reason"] = "the campaign is %s, not running" % st.value.upper()
    elif st == S.READY and not scheduled:
        out["reason"] = "the campaign is READY: it runs once started (agi-campaign campaign " \
                        "start %s)" % cfg.name
    elif scheduled and cfg.end is not None and now >= cfg.end:
        out["reason"] = "its end %s has passed" % show_time(cfg.end, cfg.timezone)
    if out["reason"] is not None:
        return out
    out["rough"] = len(progress.observed) < PRIOR_UNTIL
    chain = Chain(progress.observed, progress.in_flight, cfg.dial_timeout_s)
    spacing, spaced_by = _spacing(cfg, progress)
    end_s = None
    if scheduled and cfg.end is not None:
        end_s = (cfg.end - now).total_seconds()
    step_s = _first_step(cfg, chain, progress, spacing)
    for _ in range(4):
        run = simulate(cfg, chain, progress, now, step_s, gap_s, end_s, spacing)
        if run.stopped != "steps":
            break
        step_s *= 4
    if run.finish_s is None and end_s is not None and end_s <= HORIZON.total_seconds():
        # no finish found: does the end come first, and with how many numbers left?
        run = simulate(cfg, chain, progress, now, max(end_s / STEPS, 0.05), gap_s, end_s,
                       spacing, until_end=True)
        if run.finish_s is None and run.left_at_end >= TAIL:
            out["cannot_finish_before_end"] = True
            out["left_at_end"] = round(run.left_at_end)
    if run.finish_s is None:
        out["reason"] = _no_finish(cfg, progress, now)
        return out
    mean_d = run.busy_s / run.attempts if run.attempts > EPS else None
    if mean_d:
        by_channels = cfg.max_channels / (mean_d + gap_s)
        by_spacing = 1.0 / spacing if spacing > 0 else math.inf
        out["per_minute"] = round(min(by_channels, by_spacing) * 60, 1)
        out["limited_by"] = "max_channels" if by_channels <= by_spacing else spaced_by
        out["mean_attempt_s"] = round(mean_d, 2)
    out["attempts"] = round(run.attempts)
    out["finishes_at"] = show_time(now + dt.timedelta(seconds=run.finish_s), cfg.timezone,
                                   iso=True)
    if end_s is not None and run.finish_s > end_s:
        out["cannot_finish_before_end"] = True
        out["left_at_end"] = max(1, round(run.left_at_end))
    return out
