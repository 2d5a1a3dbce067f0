"""Issue 11 item 2 acceptance, end to end on the real Asterisk 22: a callee who presses the
opt-out key during the message (the sandbox callee d4 = 6 sends its d3 with SendDTMF) is on the
Do-Not-Call list while its call is still up, and a second campaign checking that list, started
afterwards, never dials it while it dials its other numbers; `collect` stores the key a callee
presses on the attempt.

Calls are counted and timed from Asterisk's own events (harness.ChannelMonitor, LegEnds below),
not from our database: "before the call ends" means the test saw the DNC entry in the database
before Asterisk reported the callee leg's Hangup."""
import threading
import time

import pytest

from agi_campaign import campaigns
from agi_campaign.clock import SystemClock, from_db
from agi_campaign.models import DncEntry
from agi_campaign.testing import harness

from tests.integration.support import (attempts_by_phone, campaign, destinations_recorded,
                                       load, numbers_of, state, wait_for)

pytestmark = pytest.mark.asterisk

MESSAGE = ["hello-world", "silence/5"]  # ~6 s; the callee presses its key 1 s after answering
OPT_OUT = {"digit": "9", "dnc_list": "optout", "confirm_sounds": ["beep", "silence/2"]}


class LegEnds:
    """An AMI listener: time.monotonic() of each callee leg's Hangup, by number (digits)."""

    def __init__(self, marker="@acamp-test-callees-"):
        self.marker = marker
        self.ended = {}
        self._lock = threading.Lock()

    def __call__(self, event):
        channel = event.get("Channel", "")
        if event.get("Event") == "Hangup" and self.marker in channel and channel.endswith(";1"):
            number = channel[len("Local/"):channel.index("@")]
            with self._lock:
                self.ended.setdefault(number, time.monotonic())

    def ended_at(self, phone):
        with self._lock:
            return self.ended.get(phone[1:])


def watch_dnc(phones, listed, stop):
    """Poll the DNC list every 50 ms; `listed[phone]` = time.monotonic() first seen."""
    while not stop.is_set():
        for entry in DncEntry.select().where(DncEntry.list_name == "optout"):
            if entry.phone in phones:
                listed.setdefault(entry.phone, time.monotonic())
        stop.wait(0.05)


def run(name, phones, tmp_path, mon, timeout=30):
    load(name, phones, tmp_path)
    campaigns.apply_command(name, "start", SystemClock().now())
    took = wait_for(lambda: state(name) == "completed", timeout)
    wait_for(lambda: not mon.live, 10)
    return took


def test_opt_out_key_lists_the_number_before_the_call_ends_and_no_campaign_dials_it_again(
        dialer, asterisk, tmp_path):
    quitters = [harness.callee_number(4700 + i, "optout", hold_s=9) for i in range(2)]
    stayer = harness.callee_number(4710, "answer", hold_s=2)
    others = [harness.callee_number(4720 + i, "answer", hold_s=1) for i in range(2)]
    message = {"type": "message", "sounds": MESSAGE, "opt_out": OPT_OUT}
    dialer.start({"first": campaign(max_channels=5, max_attempts=1, on_connect=message,
                                    dnc_lists=["blocked", "optout"]),
                  "second": campaign(max_channels=5, max_attempts=1, dnc_lists=["optout"])},
                 {"main": asterisk}, dnc_lists=("blocked", "optout"))

    ends, listed, stop = LegEnds(), {}, threading.Event()
    watcher = threading.Thread(target=watch_dnc, args=(set(quitters), listed, stop), daemon=True)
    with harness.ChannelMonitor(asterisk) as mon:
        mon.client.add_listener(ends)
        watcher.start()
        try:
            took_first = run("first", quitters + [stayer], tmp_path, mon)
        finally:
            stop.set()
            watcher.join(5)
        took_second = run("second", quitters + others, tmp_path, mon)
    print("first completed in %.1f s, second in %.1f s" % (took_first, took_second))

    # listed while the call was still up (it ends when the ~2.5 s confirmation has played)
    early = {p: round(ends.ended_at(p) - listed[p], 2) for p in quitters if p in listed}
    print("seconds from the DNC entry to the callee leg's hangup:", early)
    assert set(early) == set(quitters) and all(gap > 0 for gap in early.values()), early
    entries = {e.phone: e for e in DncEntry.select().where(DncEntry.list_name == "optout")}
    assert set(entries) == set(quitters)  # the one who did not press stays off the list
    wait_for(lambda: destinations_recorded("first"), 10)
    first = attempts_by_phone("first")
    for p in quitters:
        (att,) = first[p]
        assert (att.outcome, att.opted_out, att.digits, att.dest_result) == \
            ("answered", True, "9", "opted_out")
        assert from_db(entries[p].added_at) < from_db(att.ended_at)
        assert entries[p].source == "opt-out attempt=%s campaign=first" % att.id
    (stayed,) = first[stayer]
    assert (stayed.outcome, stayed.opted_out, stayed.digits) == ("answered", None, None)
    assert {p: n.status for p, n in numbers_of("first").items()} == \
        {p: "done" for p in quitters + [stayer]}

    # the second campaign, started afterwards, never dials them; its other numbers it does
    dialed = {"+" + number: count for number, count in mon.dialed.items()}
    assert {p: dialed.get(p, 0) for p in quitters + others + [stayer]} == \
        {**{p: 1 for p in quitters}, **{p: 1 for p in others}, stayer: 1}
    second = numbers_of("second")
    assert {p: second[p].status for p in quitters + others} == \
        {**{p: "dnc" for p in quitters}, **{p: "done" for p in others}}
    assert not any(attempts_by_phone("second").get(p) for p in quitters)


def test_opt_out_collect_stores_the_key_pressed_on_the_attempt(dialer, asterisk, tmp_path):
    presser = harness.callee_number(4730, "optout", hold_s=7)  # presses 7: not the opt-out key
    silent = harness.callee_number(4731, "answer", hold_s=6)
    message = {"type": "message", "sounds": ["beep"], "opt_out": OPT_OUT,
               "collect": {"max_digits": 1, "timeout_s": 2, "sounds": ["silence/3"]}}
    dialer.start({"survey": campaign(max_channels=2, max_attempts=1, on_connect=message,
                                     dnc_lists=["optout"])},
                 {"main": asterisk}, dnc_lists=("blocked", "optout"))
    with harness.ChannelMonitor(asterisk) as mon:
        took = run("survey", [presser, silent], tmp_path, mon)
    print("survey completed in %.1f s" % took)

    atts = attempts_by_phone("survey")
    got = {p: (a.outcome, a.digits, a.opted_out, a.dest_result)
           for p, (a,) in atts.items()}
    assert got == {presser: ("answered", "7", None, "played"),
                   silent: ("answered", "", None, "played")}
    assert DncEntry.select().count() == 0
    assert mon.dialed[presser[1:]] == 1 and mon.dialed[silent[1:]] == 1
