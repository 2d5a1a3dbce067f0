"""The direct call path's dialplan contract on Asterisk 22 (dialplan/README.md, "What the dialer
sends (AMI), direct path" and "Outcomes on the direct path").

Each call is originated with the project's own `originate.originate_action` (so the escaped
hangup-handler variable is checked as Asterisk parses it), through the dialer's AMI user with
its event filter; a minimal FastAGI server (tests/integration/test_sandbox.py's) plays the
`connect` and `result` scripts. All calls run at once in the module fixture.
"""
import secrets
import time
import types

import pytest

from agi_campaign.claim import Claimed
from agi_campaign.originate import originate_action
from agi_campaign.results import dial_status_for
from tests.integration.test_sandbox import MiniAmi, MiniFastAgi, collect, number

pytestmark = pytest.mark.asterisk

# attempt id -> (callee number, dial timeout s)
CALLS = {
    "201": (number(1, 3, "01"), 5),   # answers; connect records (ACAMP_RECORDED=1)
    "202": (number(1, 3, "02"), 5),   # answers; connect does not record (our service down)
    "203": (number(2, 0, "03"), 5),   # busy
    "204": (number(3, 0, "04"), 2),   # rings past the timeout
    "205": (number(4, 0, "05"), 5),   # congestion
    "206": (number(5, 0, "06"), 5),   # Hangup(3)
    "207": (number(9, 0, "07"), 5),   # Hangup(1): unallocated
}
# attempt -> (OriginateResponse Reason, `result` arguments 3-4, recorded DIALSTATUS)
UNANSWERED = {
    "203": ("5", ["REASON5", "0"], "BUSY"),
    "204": ("3", ["REASON3", "19"], "NOANSWER"),
    "205": ("8", ["REASON8", "0"], "CONGESTION"),
    "206": ("0", ["REASON0", "3"], "CHANUNAVAIL"),
    "207": ("0", ["REASON0", "1"], "CHANUNAVAIL"),
}


def connect_and_record(s):
    s.seen["stream"] = s.cmd('STREAM FILE hello-world ""')
    s.seen["set"] = s.cmd("SET VARIABLE ACAMP_RECORDED 1")
    s.seen["closed_at"] = time.time()  # before the socket closes: the channel is still up


def connect_unrecorded(s):
    s.seen["stream"] = s.cmd('STREAM FILE hello-world ""')


def result_reads_the_copy(s):
    s.seen["copy"] = s.cmd(f"DATABASE GET agi-campaign sbx-{s.args[0]}")


@pytest.fixture(scope="module")
def direct_calls(asterisk):
    agi = MiniFastAgi()
    ami = MiniAmi(asterisk.ami_credentials)   # the dialer's user: its event filter applies
    server = types.SimpleNamespace(
        call_path="direct", dial_template=asterisk.dial_template,
        agi_url=agi.url, call_context="agi-campaign-call", hangup_context="agi-campaign-hangup")
    campaign = types.SimpleNamespace(caller_id='"Test" <12025550100>', dial_timeout_s=5)
    tokens = {a: secrets.token_hex(8) for a in CALLS}
    agi.scenarios[("connect", "201")] = connect_and_record
    agi.scenarios[("connect", "202")] = connect_unrecorded
    for attempt in UNANSWERED:
        agi.scenarios[("result", attempt)] = result_reads_the_copy
    try:
        for attempt, (num, timeout_s) in CALLS.items():
            claimed = Claimed(attempt_id=int(attempt), token=tokens[attempt], number_id=1,
                              phone="+" + num, extra={}, seq=1)
            action = originate_action(claimed, dataclass_like(campaign, timeout_s), server,
                                      7, "sbx")
            reply = ami.request(list(_headers(action)))
            assert reply["Response"] == "Success", reply
        sessions = collect(agi, {("connect", "201"), ("connect", "202"), ("result", "202")}
                           | {("result", a) for a in UNANSWERED})
        responses = {a: ami.wait_for(lambda m, a=a: m.get("Event") == "OriginateResponse"
                                     and m.get("ActionID") == f"acamp-sbx-{a}-{tokens[a]}")
                     for a in CALLS}
        hangups = {a: ami.wait_for(lambda m, a=a: m.get("Event") == "Hangup"
                                   and m.get("Uniqueid") == f"acamp-sbx-{a}-{tokens[a]}")
                   for a in ("201", "202")}
        asterisk.wait_channels(0, timeout=20)
        copies = {a: asterisk.cli(f"database get agi-campaign sbx-{a}").strip() for a in CALLS}
        events = {m.get("Event") for m in ami.messages if "Event" in m}
        hangup_ids = {m.get("Uniqueid") for m in ami.messages if m.get("Event") == "Hangup"}
    finally:
        ami.close()
        agi.shutdown()
        agi.server_close()
    return types.SimpleNamespace(tokens=tokens, sessions=sessions, responses=responses,
                                 hangups=hangups, copies=copies, events=events,
                                 hangup_ids=hangup_ids)


def dataclass_like(campaign, timeout_s):
    return types.SimpleNamespace(caller_id=campaign.caller_id, dial_timeout_s=timeout_s)


def _headers(action):
    for key, value in action.items():
        for item in (value if isinstance(value, list) else [value]):
            yield key, item


def test_direct_answered_call_runs_connect_on_the_callees_channel(direct_calls):
    s = direct_calls.sessions[("connect", "201")]
    assert s.args == ["201", direct_calls.tokens["201"], "direct"]
    assert s.env["agi_context"] == "agi-campaign-call"
    assert s.env["agi_channel"].startswith("Local/%s@acamp-test-callees" % CALLS["201"][0])
    assert s.env["agi_uniqueid"] == "acamp-sbx-201-%s" % direct_calls.tokens["201"]
    assert s.seen["stream"].startswith("200 result=0") and s.seen["set"] == "200 result=1"
    assert direct_calls.responses["201"]["Reason"] == "4"


def test_direct_recorded_call_keeps_no_copy_and_its_hangup_comes_after_connect(direct_calls):
    assert "Database entry not found" in direct_calls.copies["201"]
    hangup = direct_calls.hangups["201"]
    closed_at = direct_calls.sessions[("connect", "201")].seen["closed_at"]
    assert float(hangup["Timestamp"]) > closed_at  # the slot is freed after connect's record
    assert hangup["Cause"] == "16"


def test_direct_unrecorded_answered_call_leaves_an_answer_copy_then_reports_it(direct_calls):
    assert direct_calls.copies["202"].endswith(
        "%s^ANSWER^16^^" % direct_calls.tokens["202"]), direct_calls.copies["202"]
    s = direct_calls.sessions[("result", "202")]  # from the hangup handler, at once
    assert s.args == ["202", direct_calls.tokens["202"], "ANSWER", "16", "", "", "direct"]
    assert ("result", "201") not in direct_calls.sessions  # recorded by connect: no session


@pytest.mark.parametrize("attempt", sorted(UNANSWERED))
def test_direct_unanswered_call_reports_reason_and_cause(direct_calls, attempt):
    reason, args, dial_status = UNANSWERED[attempt]
    token = direct_calls.tokens[attempt]
    response = direct_calls.responses[attempt]
    assert (response["Response"], response["Reason"]) == ("Failure", reason)
    s = direct_calls.sessions[("result", attempt)]
    assert s.env["agi_channel"] == "OutgoingSpoolFailed"
    assert s.args == [attempt, token] + args + ["", ""]
    assert s.seen["copy"] == "200 result=1 (%s^%s^%s^^)" % (token, *args)  # kept for recovery
    assert dial_status_for(*args) == dial_status
    # the failed pseudo-channel's own hangup handler left the copy as `failed` wrote it
    assert direct_calls.copies[attempt].endswith("%s^%s^%s^^" % (token, *args))


def test_direct_dialer_user_gets_only_originate_responses_and_its_own_hangups(direct_calls):
    assert direct_calls.events <= {"OriginateResponse", "Hangup", "FullyBooted"}
    assert {"OriginateResponse", "Hangup"} <= direct_calls.events
    # the Hangup of each originated channel, and nothing else: not the Local callees' ";2"
    # halves, not the failed pseudo-channels (the sandbox's own uniqueids start with acamp-)
    assert direct_calls.hangup_ids == {
        "acamp-sbx-%s-%s" % (a, direct_calls.tokens[a]) for a in CALLS}
