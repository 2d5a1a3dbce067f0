"""Issue 11 item 4 acceptance, end to end on the real Asterisk 22: answering-machine detection.

The sandbox's `machine` callee answers with a long greeting (vm-intro), a beep and silence; its
`person` callee says a short "hello" then is silent (sandbox-test.conf, d4 = 7 and 8). With
`amd: {action: hangup}` the machine is classified `machine` (AMDSTATUS and AMDCAUSE on the
attempt), hung up on, and retried per `retry: {machine: {delay_s, max}}`; the person is
answered and hears the message. With `amd: {action: message}` the machine gets its message
after the beep. Calls are counted from Asterisk's own events (harness.ChannelMonitor), and what
was played or hung up from Asterisk's AGIExecStart events."""
import collections
import time

import pytest

from agi_campaign import campaigns
from agi_campaign.clock import SystemClock
from agi_campaign.models import Attempt
from agi_campaign.originate import parse_channel_id
from agi_campaign.testing import harness

from tests.integration.support import (attempts_by_phone, campaign, check_invariants,
                                       destinations_recorded, load, numbers_of, state,
                                       wait_for)

pytestmark = pytest.mark.asterisk

MACHINE_DELAY_S = 2
MACHINE_MAX = 1          # retries after a machine: 2 calls
MAX_ATTEMPTS = 5


AMD_COMMANDS = ['EXEC "AMD"', 'GET VARIABLE "AMDSTATUS"', 'GET VARIABLE "AMDCAUSE"']
RECORDED = 'SET VARIABLE "ACAMP_RECORDED" "1"'
GREETING_S = 5.6  # vm-intro (9339 bytes of GSM, 1650 a second) before the beep


def agi_commands(events):
    """{attempt id: [(arrival, AGI command), ...]} run on the answered channels (the callee's
    own on the direct path), from AGIExecStart events: the channel whose Uniqueid is the
    originate's ChannelId, acamp-<instance>-<attempt id>-<token>."""
    out = collections.defaultdict(list)
    for _, ev in events:
        uniqueid, at = ev.get("Uniqueid", ""), float(ev.get("Timestamp", 0))
        ids = parse_channel_id(uniqueid)
        if ev.get("Event") == "AGIExecStart" and ids and not uniqueid.endswith("-2"):
            out[ids[0]].append((at, ev["Command"]))
    return out


def route_of(sent):
    """The AGI commands of a direct path's `connect` before it recorded the call (it ends with
    RECORDED, after reading HANGUPCAUSE when the channel had hung up)."""
    commands = [c for _, c in sent]
    assert commands[-1] == RECORDED, commands
    commands.pop()
    if commands[-1] == 'GET VARIABLE "HANGUPCAUSE"':
        commands.pop()
    return commands


def callee_legs(events, phone):
    """[(began, ended)] of `phone`'s callee legs, from Newchannel/Hangup events, in Asterisk's
    time (their `Timestamp`: the sandbox sets timestampevents)."""
    began, ended = {}, {}
    prefix = "Local/%s@acamp-test-callees-" % phone[1:]
    for at, ev in events:
        channel = ev.get("Channel", "")
        if channel.startswith(prefix) and channel.endswith(";1"):
            if ev.get("Event") == "Newchannel":
                began.setdefault(channel, at)
            elif ev.get("Event") == "Hangup":
                ended.setdefault(channel, at)
    return sorted((t, ended.get(ch)) for ch, t in began.items())


def test_amd_machine_hung_up_and_retried_person_hears_the_message(dialer, asterisk, tmp_path):
    machine = harness.callee_number(4700, "machine")
    person = harness.callee_number(4701, "person", hold_s=2)
    voicemail = harness.callee_number(4702, "machine")
    events = []
    with harness.ChannelMonitor(asterisk) as mon:
        mon.client.add_listener(lambda ev: events.append((time.monotonic(), ev)))
        dialer.start({
            "amdhangup": campaign(
                max_channels=2, max_attempts=MAX_ATTEMPTS, retry_delay_s=1,
                on_connect={"type": "message", "sounds": ["beep"]}, amd={"action": "hangup"},
                retry={"machine": {"delay_s": MACHINE_DELAY_S, "max": MACHINE_MAX}}),
            "amdmessage": campaign(
                on_connect={"type": "message", "sounds": ["beep"]},
                amd={"action": "message", "sounds": ["hello"]}),
        }, {"main": asterisk})
        load("amdhangup", [machine, person], tmp_path)
        load("amdmessage", [voicemail], tmp_path)
        for name in ("amdhangup", "amdmessage"):
            campaigns.apply_command(name, "start", SystemClock().now())
        took = wait_for(lambda: all(state(n) == "completed"
                                    for n in ("amdhangup", "amdmessage")), 50)
        wait_for(lambda: not mon.live, 15)
        wait_for(lambda: destinations_recorded("amdhangup", "amdmessage"), 10)
    print("completed in %.1f s" % took)
    commands = agi_commands(events)
    atts = attempts_by_phone("amdhangup")
    nums = numbers_of("amdhangup")

    # The machine: classified by AMD, hung up on before anything is played, outcome `machine`
    # (not answered), called again after the rule's delay and failed at the rule's max.
    assert (nums[machine].status, nums[machine].last_outcome, nums[machine].attempts) == (
        "failed", "machine", MACHINE_MAX + 1)
    assert len(atts[machine]) == MACHINE_MAX + 1
    for att in atts[machine]:
        assert (att.outcome, att.dial_status, att.amd_status, att.amd_cause, att.dest_result) == (
            "machine", "ANSWER", "MACHINE", "LONGGREETING-1500-1500", "machine_hangup")
        assert route_of(commands[att.id]) == AMD_COMMANDS + ["HANGUP"]
    legs = callee_legs(events, machine)
    assert len(legs) == MACHINE_MAX + 1 == mon.dialed[machine[1:]]
    gap = legs[1][0] - legs[0][1]
    print("machine legs %s, gap %.2f s" % (legs, gap))
    assert MACHINE_DELAY_S <= gap <= MACHINE_DELAY_S + 2.0
    assert all(end - began < GREETING_S for began, end in legs)    # hung up mid-greeting

    # The person: HUMAN, answered, the campaign's message played.
    [att] = atts[person]
    assert (att.outcome, att.amd_status, att.amd_cause, att.dest_result) == (
        "answered", "HUMAN", "HUMAN-800-800", "played")
    assert nums[person].status == "done" and mon.dialed[person[1:]] == 1
    assert route_of(commands[att.id]) == AMD_COMMANDS + ['STREAM FILE "beep" "" "0"']

    # action message: the machine gets the amd sounds after its greeting and beep; answered.
    [vm] = Attempt.select().where(Attempt.campaign == campaigns.get_campaign("amdmessage"))
    assert (vm.outcome, vm.amd_status, vm.amd_cause, vm.dest_result) == (
        "answered", "MACHINE", "LONGGREETING-1500-1500", "machine_message:played")
    sent = commands[vm.id]
    assert route_of(sent) == AMD_COMMANDS + ['EXEC "WaitForSilence" "1500,1,20"',
                                             'STREAM FILE "hello" "" "0"']
    [(began, _)] = callee_legs(events, voicemail)
    played_at = [at for at, c in sent if c.startswith("STREAM FILE")][-1]
    print("voicemail message %.2f s after the callee leg began" % (played_at - began))
    assert played_at - began >= GREETING_S
    check_invariants("amdhangup", {machine: "machine", person: "answer"}, mon, MAX_ATTEMPTS, 3,
                     others={voicemail[1:]})
