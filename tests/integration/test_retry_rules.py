"""Issue 11 item 3 acceptance, end to end on the real Asterisk 22: busy and no-answer callees
are retried with their own delays and caps (`retry: {busy: {delay_s, max}, ...}`), outcomes
without a rule keep the campaign's retry_delay_s and max_attempts, and `max: 0` is final at once.

Calls are counted and timed from Asterisk's own events, not from our database: every callee
leg (`Local/<number>@acamp-test-callees-...;1`, see harness.ChannelMonitor) is timed from its
Newchannel to its Hangup as received on the monitor's AMI session, and the gap between one leg's
Hangup and the same number's next Newchannel must be at least the rule's delay (no tolerance
below: the dialer may only count the delay from after it learnt the call ended) and at most
SLACK_S above it."""
import threading
import time

import pytest

from agi_campaign import campaigns
from agi_campaign.clock import SystemClock
from agi_campaign.testing import harness

from tests.integration.support import (EXPECTED_OUTCOME, attempts_by_phone, campaign,
                                       check_invariants, load, numbers_of, state, wait_for)

pytestmark = pytest.mark.asterisk

MAX_ATTEMPTS = 5
RETRY_DELAY_S = 1  # the campaign's default, below every rule's delay so a rule ignored shows
SLACK_S = 1.5      # a retry may start this much later than its delay (tick, claim, originate)


class LegTimes:
    """An AMI event listener: (began, ended) of every callee leg by number (digits, as in
    ChannelMonitor.dialed), in Asterisk's own time: the events' `Timestamp` (the sandbox
    sets timestampevents), so a machine slow to deliver events cannot shorten a gap."""

    def __init__(self, marker="@acamp-test-callees-"):
        self.marker = marker
        self.began, self.ended = {}, {}
        self._lock = threading.Lock()

    def __call__(self, event):
        name, channel = event.get("Event"), event.get("Channel", "")
        if self.marker not in channel or not channel.endswith(";1"):
            return
        now = float(event["Timestamp"])
        with self._lock:
            if name == "Newchannel":
                self.began.setdefault(channel, now)
            elif name == "Hangup":
                self.ended.setdefault(channel, now)

    def legs(self, phone):
        """[(began, ended), ...] of `phone` (E.164) in order; ended is None while it is up."""
        prefix = "Local/%s@" % phone[1:]
        with self._lock:
            return sorted((t, self.ended.get(ch)) for ch, t in self.began.items()
                          if ch.startswith(prefix))

    def gaps(self, phone):
        """Seconds from each leg's end to the start of the number's next leg."""
        legs = self.legs(phone)
        return [round(nxt[0] - prev[1], 3) for prev, nxt in zip(legs, legs[1:])]


def run_campaign(dialer, asterisk, tmp_path, name, plan, timeout, linger_s=0, **config):
    """Start campaign `name` (config: campaign() keys) on `plan`'s numbers, wait until it is
    completed and Asterisk has no callee leg up, then watch `linger_s` more seconds for legs
    nobody should place; returns (ChannelMonitor, LegTimes, seconds to completion)."""
    legs, mon = LegTimes(), harness.ChannelMonitor(asterisk)
    mon.client.add_listener(legs)
    with mon:
        dialer.start({name: campaign(**config)}, {"main": asterisk})
        load(name, list(plan), tmp_path)
        campaigns.apply_command(name, "start", SystemClock().now())
        took = wait_for(lambda: state(name) == "completed", timeout)
        wait_for(lambda: not mon.live, 10)
        time.sleep(linger_s)
    return mon, legs, took


def observed(name, plan, legs):
    """{phone: (callee legs seen by Asterisk, status, last_outcome, attempts, outcomes)}."""
    nums, atts = numbers_of(name), attempts_by_phone(name)
    return {p: (len(legs.legs(p)), nums[p].status, nums[p].last_outcome, nums[p].attempts,
                sorted({a.outcome for a in atts[p]})) for p in plan}


def expected(plan, calls):
    """What `observed` must give when each number of behaviour k was dialed calls[k] times."""
    return {p: (calls[k], "done" if k == "answer" else "failed", EXPECTED_OUTCOME[k], calls[k],
                [EXPECTED_OUTCOME[k]]) for p, k in plan.items()}


def test_retry_rules_busy_and_noanswer_retried_with_their_own_delays_and_caps(
        dialer, asterisk, tmp_path):
    plan = {}
    for kind, first in (("busy", 4600), ("noanswer", 4610), ("answer", 4620),
                        ("congestion", 4630)):
        count = 2 if kind == "congestion" else 3
        plan.update({harness.callee_number(first + i, kind, hold_s=1): kind
                     for i in range(count)})
    rules = {"busy": {"delay_s": 2, "max": 2}, "noanswer": {"delay_s": 4, "max": 1}}
    calls = {"busy": 3, "noanswer": 2, "answer": 1, "congestion": MAX_ATTEMPTS}  # max retries
    delay = {"busy": 2, "noanswer": 4, "answer": None,
             "congestion": RETRY_DELAY_S}  # congestion has no rule: the campaign default

    mon, legs, took = run_campaign(
        dialer, asterisk, tmp_path, "retries", plan, 45, max_channels=len(plan), delay_ms=0,
        dial_timeout_s=5, max_attempts=MAX_ATTEMPTS, retry_delay_s=RETRY_DELAY_S, retry=rules)

    gaps = {p: legs.gaps(p) for p in plan}
    print("completed in %.1f s; gaps (s) by behaviour:" % took)
    for kind in calls:
        print("  %-10s %s" % (kind, [gaps[p] for p, k in plan.items() if k == kind]))
    assert observed("retries", plan, legs) == expected(plan, calls)
    assert all(end is not None for p in plan for _, end in legs.legs(p))
    out_of_window = {p: gaps[p] for p, k in plan.items()
                     if any(not delay[k] <= g <= delay[k] + SLACK_S for g in gaps[p])}
    assert out_of_window == {}, (delay, SLACK_S)
    check_invariants("retries", plan, mon, MAX_ATTEMPTS, len(plan))
    assert mon.started == sum(calls[k] for k in plan.values())


def test_retry_rules_max_0_makes_busy_final_after_one_call(dialer, asterisk, tmp_path):
    plan = {harness.callee_number(4650 + i, kind, hold_s=1): kind
            for i, kind in enumerate(("busy", "busy", "answer"))}

    mon, legs, took = run_campaign(
        dialer, asterisk, tmp_path, "busyfinal", plan, 20, linger_s=RETRY_DELAY_S + SLACK_S,
        max_channels=len(plan), delay_ms=0, max_attempts=MAX_ATTEMPTS,
        retry_delay_s=RETRY_DELAY_S, retry={"busy": {"max": 0}})

    print("completed in %.1f s" % took)  # linger: a busy number re-armed anyway is dialed
    assert observed("busyfinal", plan, legs) == expected(plan, {"busy": 1, "answer": 1})
    assert mon.started == len(plan)
    check_invariants("busyfinal", plan, mon, MAX_ATTEMPTS, len(plan))
