"""End to end against the real Asterisk 22: the service dials, connects and records."""
import collections
import datetime as dt
import random
import time

import pytest

from agi_campaign import campaigns, dnc
from agi_campaign.clock import SystemClock
from agi_campaign.models import Attempt
from agi_campaign.testing import harness
from agi_campaign.testing.sandbox import CONFERENCE, QUEUE

from tests.integration.support import (EXPECTED_OUTCOME, attempts_by_phone, campaign, load,
                                       numbers_of, state, wait_for)


# (DIALSTATUS, HANGUPCAUSE) recorded per callee kind, on each call path (dialplan/README.md):
# the direct path's cause is the callee channel's own, the local path's the `;2` half's.
RECORDED = {
    "direct": {"answer": ("ANSWER", {16}), "busy": ("BUSY", {0}), "noanswer": ("NOANSWER", {19}),
               "congestion": ("CONGESTION", {0}), "unavailable": ("CHANUNAVAIL", {3})},
    "local": {"answer": ("ANSWER", {16}), "busy": ("BUSY", {16}),
              "noanswer": ("NOANSWER", {16}), "congestion": ("CONGESTION", {16}),
              "unavailable": ("CHANUNAVAIL", {3})},
}


@pytest.mark.parametrize("call_path", ["direct", "local"])
def test_e2e_mixed_campaign_of_200_completes_with_true_outcomes(dialer, asterisk, tmp_path,
                                                                  call_path):
    rng = random.Random(3)
    kinds = ["answer"] * 10 + ["busy"] * 3 + ["noanswer"] * 2 + ["congestion"] * 2 + \
        ["unavailable"] * 2
    plan = {}
    for i in range(220):
        kind = rng.choice(kinds)
        plan[harness.callee_number(i, kind, hold_s=rng.randint(1, 2))] = kind
    max_channels, delay_ms = 25, 15
    with harness.ChannelMonitor(asterisk) as mon:
        dialer.start({"mixed": campaign(max_channels=max_channels, delay_ms=delay_ms)},
                     {"main": asterisk}, server_limits={"main": {"call_path": call_path}})
        load("mixed", list(plan), tmp_path)
        campaigns.apply_command("mixed", "start", SystemClock().now())
        wait_for(lambda: state("mixed") == "completed", 240, step=0.5)
    nums, atts = numbers_of("mixed"), attempts_by_phone("mixed")
    print("peak concurrent callee legs (Asterisk): %d of max %d; legs started %d; attempts %d"
          % (mon.peak, max_channels, mon.started, sum(len(a) for a in atts.values())))
    assert 0 < mon.peak <= max_channels
    for phone, kind in plan.items():
        expected = EXPECTED_OUTCOME[kind]
        outcomes = [a.outcome for a in atts[phone]]
        assert 1 <= len(outcomes) <= 2, (phone, outcomes)
        assert set(outcomes) == {expected}, (phone, kind, outcomes)
        status, causes = RECORDED[call_path][kind]
        assert {(a.dial_status, a.hangup_cause in causes) for a in atts[phone]} == {
            (status, True)}, (phone, kind, [(a.dial_status, a.hangup_cause) for a in atts[phone]])
        if kind == "answer":
            assert nums[phone].status == "done" and len(outcomes) == 1
        else:  # retried until max_attempts, then failed
            assert nums[phone].status == "failed" and len(outcomes) == 2
    assert mon.started == sum(len(a) for a in atts.values())
    # every answered call ended at its channel's Hangup event (not HANGUP_EVENT_WAIT_S later)
    assert [a.note for lst in atts.values() for a in lst if a.note] == []
    assert all(a.status == "ended" for lst in atts.values() for a in lst)
    starts = sorted(a.created_at for lst in atts.values() for a in lst)
    gaps = [(b - a).total_seconds() * 1000 for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= delay_ms - 1, min(gaps)


def test_e2e_each_on_connect_destination_is_seen_by_asterisk(dialer, asterisk_factory, tmp_path):
    ast = asterisk_factory(ami_read="call,agent,agi,user")
    events = []
    with harness.ChannelMonitor(ast) as mon:
        mon.client.add_listener(events.append)
        dialer.start({
            "msg": campaign(on_connect={"type": "message", "sounds": ["hello-world"]}),
            "ext": campaign(on_connect={"type": "extension", "extension": "1000",
                                        "context": "acamp-test-ext", "timeout_s": 10}),
            "queue": campaign(on_connect={"type": "queue", "queue": QUEUE, "timeout_s": 20}),
            "conf": campaign(on_connect={"type": "conference", "room": CONFERENCE}),
        }, {"main": ast})
        for i, name in enumerate(("msg", "ext", "queue", "conf")):
            load(name, [harness.callee_number(900 + i, "answer", hold_s=4)], tmp_path)
            campaigns.apply_command(name, "start", SystemClock().now())
        wait_for(lambda: all(state(n) == "completed" for n in ("msg", "ext", "queue", "conf")),
                 60)

        def attempts():
            return {n: Attempt.get(Attempt.campaign == campaigns.get_campaign(n)) for n in
                    ("msg", "ext", "queue", "conf")}
        # The destination's result is queued, not waited for (the callee must not hear the
        # database), and the outcome can be recorded first: when the callee hangs up, the
        # hangup handler's `result` session may start before `connect` returns.
        wait_for(lambda: all(a.dest_result is not None for a in attempts().values()), 10)
    dest = attempts()
    assert all(a.outcome == "answered" for a in dest.values())
    assert dest["msg"].dest_result == "played"
    assert dest["ext"].dest_result == "DIALSTATUS=ANSWER"
    assert dest["queue"].dest_result == "QUEUE=CONNECTED"
    assert dest["conf"].dest_result.startswith("CONFBRIDGE_RESULT=")
    names = collections.Counter(e.get("Event") for e in events)
    played = [e for e in events if e.get("Event") == "AGIExecStart"
              and "hello-world" in e.get("Command", "")]
    assert played, "Asterisk never ran STREAM FILE hello-world"
    assert any(e.get("Event") == "DialEnd" and e.get("DialStatus") == "ANSWER"
               and "acamp-test-ext" in e.get("DestChannel", "") for e in events)
    assert names["AgentConnect"] >= 1
    assert names["ConfbridgeJoin"] >= 1


def test_e2e_on_demand_start_pause_resume_complete(dialer, asterisk, tmp_path):
    phones = [harness.callee_number(1000 + i, "answer", hold_s=3) for i in range(24)]
    with harness.ChannelMonitor(asterisk) as mon:
        dialer.start({"od": campaign(max_channels=4, delay_ms=100,
                                     on_connect={"type": "message", "sounds": ["silence/3"]})},
                     {"main": asterisk})
        load("od", phones, tmp_path)
        campaigns.apply_command("od", "start", SystemClock().now())
        took = wait_for(lambda: state("od") == "running", 5, step=0.05)
        print("STARTNOW -> RUNNING in %.2f s" % took)
        assert took < 2.0
        wait_for(lambda: mon.started >= 4, 10, step=0.05)
        campaigns.apply_command("od", "pause", SystemClock().now())
        wait_for(lambda: not Attempt.select().where(Attempt.status != "ended").exists(), 30)
        frozen = mon.started
        assert frozen < len(phones)
        ended = Attempt.select().where(Attempt.status == "ended").count()
        assert ended == frozen and Attempt.select().where(Attempt.outcome == "answered").count() \
            == frozen  # the calls in flight ended normally
        time.sleep(2)
        assert mon.started == frozen  # no new call while paused
        campaigns.apply_command("od", "resume", SystemClock().now())
        wait_for(lambda: state("od") == "completed", 90)
    assert mon.started == len(phones)
    assert {n.status for n in numbers_of("od").values()} == {"done"}


def test_e2e_scheduled_campaign_dials_only_inside_its_window(dialer, asterisk, tmp_path):
    today = dt.datetime.now(dt.timezone.utc)
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    other = days[(today.weekday() + 3) % 7]
    window = {"type": "scheduled", "start": (today - dt.timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M"), "end": (today + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "timezone": "UTC"}
    with harness.ChannelMonitor(asterisk) as mon:
        dialer.start({
            "closed": campaign(week_time=other, **window),
            "open": campaign(week_time=days[today.weekday()], **window)}, {"main": asterisk})
        closed = [harness.callee_number(1100 + i, "answer") for i in range(3)]
        opened = [harness.callee_number(1200 + i, "answer") for i in range(3)]
        load("closed", closed, tmp_path)
        load("open", opened, tmp_path)
        wait_for(lambda: state("open") == "completed", 30)
    dialed = {"+" + k for k in mon.dialed}
    assert dialed == set(opened)
    assert state("closed") == "ready"
    assert Attempt.select().where(Attempt.campaign == campaigns.get_campaign("closed")).count() == 0


def test_e2e_number_added_to_dnc_while_running_is_not_dialed(dialer, asterisk, tmp_path):
    phones = [harness.callee_number(1300 + i, "answer", hold_s=1) for i in range(8)]
    with harness.ChannelMonitor(asterisk) as mon:
        _, config = dialer.start({"dncrun": campaign(max_channels=1, delay_ms=0)},
                                 {"main": asterisk})
        load("dncrun", phones, tmp_path)
        campaigns.apply_command("dncrun", "start", SystemClock().now())
        wait_for(lambda: mon.started >= 1, 10, step=0.05)
        dnc.add("blocked", [phones[-1]], "US", SystemClock().now(), source="test",
                known_lists=list(config.dnc_lists))
        wait_for(lambda: state("dncrun") == "completed", 60)
    assert phones[-1][1:] not in mon.dialed
    assert numbers_of("dncrun")[phones[-1]].status == "dnc"
    assert mon.started == len(phones) - 1


def test_e2e_two_servers_dial_only_their_own_and_survive_each_other(dialer, asterisk,
                                                                    asterisk_factory, tmp_path):
    other = asterisk_factory()
    a_phones = [harness.callee_number(1400 + i, "answer", hold_s=2) for i in range(12)]
    # b's calls hold 9 s and need 8 rounds of 3: its campaign cannot finish before its server
    # is stopped, however slowly a busy machine starts a's calls (a once lagged until b was done)
    b_phones = [harness.callee_number(1500 + i, "answer", hold_s=9) for i in range(24)]
    with harness.ChannelMonitor(asterisk) as mon_a, harness.ChannelMonitor(other) as mon_b:
        dialer.start({"on_a": campaign(server="a", max_channels=3),
                      "on_b": campaign(server="b", max_channels=3)},
                     {"a": asterisk, "b": other})
        load("on_a", a_phones, tmp_path)
        load("on_b", b_phones, tmp_path)
        campaigns.apply_command("on_a", "start", SystemClock().now())
        campaigns.apply_command("on_b", "start", SystemClock().now())
        wait_for(lambda: mon_b.started >= 2 and mon_a.started >= 2, 15, step=0.05)
        other.stop()
        wait_for(lambda: state("on_a") == "completed", 60)
    assert {"+" + k for k in mon_a.dialed} == set(a_phones)
    assert {"+" + k for k in mon_b.dialed} <= set(b_phones)
    assert all(a.server == "a" for a in Attempt.select().where(
        Attempt.campaign == campaigns.get_campaign("on_a")))
    assert state("on_b") == "running"
