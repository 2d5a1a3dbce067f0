"""Router: the exact AGI lines each on_connect type sends, and what it records.

The channel is the real fastagi.Channel over a scripted transport (no socket), so these tests
pin the wire format; the recorder is a fake with the results.Recorder contract.
"""
import dataclasses

import pytest

from agi_campaign import agi
from agi_campaign.config import AmdConfig, Collect, OptOut
from agi_campaign.errors import AgiCampaignError, NotFoundError
from agi_campaign.fastagi import Channel
from agi_campaign.routes import CONNECT_SCRIPT, RESULT_SCRIPT, Router

from tests.unit.support import FakeClock

TOKEN = "0123abcd"


@dataclasses.dataclass(frozen=True)
class OnConnect:
    """Stand-in with config.OnConnect's attribute names."""

    type: str
    sounds: tuple = ()
    repeat: int = 1
    extension: str = None
    context: str = None
    queue: str = None
    room: str = None
    timeout_s: int = None
    opt_out: object = None
    collect: object = None


class ScriptedAsterisk:
    """Transport: each write (a command) releases the next group of reply lines; then EOF."""

    def __init__(self, *reply_groups):
        self.reply_groups = list(reply_groups)
        self.sent = []
        self.pending = []

    def write(self, data):
        self.sent.append(data.decode("utf-8").rstrip("\n"))
        if self.reply_groups:
            self.pending.extend(self.reply_groups.pop(0))

    def readline(self, deadline=None):
        return (self.pending.pop(0) + "\n").encode("utf-8") if self.pending else b""


class FakeRecorder:
    def __init__(self, campaigns=None):
        self.campaigns = campaigns if campaigns is not None else {(101, TOKEN): "reminders"}
        self.calls = []

    def _check(self, attempt_id, token):
        if (attempt_id, token) not in self.campaigns:
            raise NotFoundError("attempt %s: unknown id or wrong token" % attempt_id)

    def lookup(self, attempt_id, token):
        self.calls.append(("lookup", attempt_id, token))
        self._check(attempt_id, token)
        return self.campaigns[(attempt_id, token)]

    def record_answer(self, attempt_id, token, now):
        self.calls.append(("answer", attempt_id, now))

    def record_amd(self, attempt_id, token, amd_status, amd_cause, machine_hangup=False):
        self.calls.append(("amd", attempt_id, amd_status, amd_cause, machine_hangup))

    def record_destination(self, attempt_id, token, dest_result, now):
        self.calls.append(("destination", attempt_id, dest_result))

    def record_opt_out(self, attempt_id, token, digit, dnc_list, now):
        self._check(attempt_id, token)
        self.calls.append(("opt_out", attempt_id, digit, dnc_list, now))
        return True

    def record_digits(self, attempt_id, token, digits):
        self.calls.append(("digits", attempt_id, digits))

    def record_outcome(self, attempt_id, token, dial_status, hangup_cause, billsec_s, dest_result):
        self.calls.append(("outcome", attempt_id, dial_status, hangup_cause, billsec_s,
                           dest_result))

    def record_result(self, attempt_id, token, dial_status, hangup_cause, answered_s, dialed_s,
                      now):
        self.calls.append(("result", attempt_id, dial_status, hangup_cause, answered_s, dialed_s))
        self._check(attempt_id, token)


def make_channel(transport, script=CONNECT_SCRIPT, args=("101", TOKEN)):
    lines = ["agi_network_script: %s" % script, "agi_uniqueid: 1700000000.7"]
    lines += ["agi_arg_%d: %s" % (n, a) for n, a in enumerate(args, start=1)]
    return Channel(agi.parse_env(lines), transport, peer="127.0.0.1")


def run(on_connect, *reply_groups, script=CONNECT_SCRIPT, args=("101", TOKEN), recorder=None,
        amd=None, on_recorded=None):
    transport = ScriptedAsterisk(*reply_groups)
    recorder = recorder or FakeRecorder()
    clock = FakeClock()
    router = Router(lambda name: {"reminders": on_connect}[name], recorder, clock, "ab12",
                    amd_for=lambda name: {"reminders": amd}[name], on_recorded=on_recorded)
    router(make_channel(transport, script, args))
    return transport.sent, recorder.calls, clock


def destination(calls):
    return [c[2] for c in calls if c[0] == "destination"]


def test_routes_message_plays_each_sound_repeat_times():
    on_connect = OnConnect("message", sounds=("hello-world", "beep"), repeat=2)
    sent, calls, clock = run(on_connect, *[["200 result=0 endpos=8000"]] * 4)
    assert sent == ['STREAM FILE "hello-world" "" "0"', 'STREAM FILE "beep" "" "0"'] * 2
    assert calls == [("lookup", 101, TOKEN), ("answer", 101, clock.now()),
                     ("destination", 101, "played")]


def test_routes_direct_connect_records_the_call_then_marks_it_recorded():
    handed = []
    on_connect = OnConnect("message", sounds=("hello-world",))
    sent, calls, clock = run(on_connect, ["200 result=0 endpos=8000"], ["200 result=1"],
                             args=("101", TOKEN, "direct"),
                             on_recorded=lambda *call: handed.append(call))
    # the callee is still on the line: the dialplan hangs up next, cause 16 (normal clearing)
    assert calls == [("lookup", 101, TOKEN), ("answer", 101, clock.now()),
                     ("outcome", 101, "ANSWER", "16", 0, "played")]
    assert sent == ['STREAM FILE "hello-world" "" "0"', 'SET VARIABLE "ACAMP_RECORDED" "1"']
    assert handed == [(101, TOKEN, ("ANSWER", "16", 0))]


def test_routes_direct_connect_after_the_callee_hung_up_records_their_cause():
    on_connect = OnConnect("message", sounds=("hello-world", "beep"))
    sent, calls, _ = run(on_connect, ["HANGUP", "200 result=0 endpos=8000"],
                         ["200 result=1 (17)"], ["200 result=1"],
                         args=("101", TOKEN, "direct"))
    assert sent[1:] == ['GET VARIABLE "HANGUPCAUSE"', 'SET VARIABLE "ACAMP_RECORDED" "1"']
    assert calls[-1] == ("outcome", 101, "ANSWER", "17", 0, "hangup_during_message")


def test_routes_direct_connect_whose_record_fails_leaves_the_astdb_copy_to_the_dialplan():
    class Failing(FakeRecorder):
        def record_outcome(self, *args):
            raise AgiCampaignError("database is locked")
    handed = []
    transport = ScriptedAsterisk(["200 result=0 endpos=8000"], ["200 result=1"])
    router = Router(lambda name: OnConnect("message", sounds=("hello-world",)), Failing(),
                    FakeClock(), "ab12", on_recorded=lambda *call: handed.append(call))
    with pytest.raises(AgiCampaignError):
        router(make_channel(transport, args=("101", TOKEN, "direct")))
    assert transport.sent == ['STREAM FILE "hello-world" "" "0"']  # no SET VARIABLE
    assert handed == []


def test_routes_message_hangup_mid_message_stops_and_records():
    on_connect = OnConnect("message", sounds=("hello-world", "beep", "vm-goodbye"))
    sent, calls, _ = run(on_connect, ["200 result=0 endpos=8000"], ["200 result=-1 endpos=1200"],
                         ["HANGUP", "200 result=0"])
    assert sent == ['STREAM FILE "hello-world" "" "0"', 'STREAM FILE "beep" "" "0"', "NOOP"]
    assert destination(calls) == ["hangup_during_message"]


def test_routes_message_hangup_line_before_success_stops_early():
    on_connect = OnConnect("message", sounds=("hello-world", "beep"))
    sent, calls, _ = run(on_connect, ["HANGUP", "200 result=0 endpos=8000"])
    assert sent == ['STREAM FILE "hello-world" "" "0"']
    assert destination(calls) == ["hangup_during_message"]


def test_routes_message_eof_is_hangup_during_message():
    on_connect = OnConnect("message", sounds=("hello-world",))
    sent, calls, _ = run(on_connect)
    assert sent == ['STREAM FILE "hello-world" "" "0"']
    assert destination(calls) == ["hangup_during_message"]


def test_routes_message_missing_sound_is_playback_failed():
    on_connect = OnConnect("message", sounds=("no-such", "beep"))
    sent, calls, _ = run(on_connect, ["200 result=-1 endpos=0"], ["200 result=0"])
    assert sent == ['STREAM FILE "no-such" "" "0"', "NOOP"]
    assert destination(calls) == ["playback_failed"]


def test_routes_message_with_config_defaults_none():
    sent, calls, _ = run(OnConnect("message", sounds=("hello-world",), repeat=None),
                         ["200 result=0 endpos=8000"])
    assert sent == ['STREAM FILE "hello-world" "" "0"']
    assert destination(calls) == ["played"]


def test_routes_extension_dials_and_reads_dialstatus():
    on_connect = OnConnect("extension", extension="1000", context="from-internal", timeout_s=30)
    sent, calls, _ = run(on_connect, ["200 result=0"], ["200 result=1 (ANSWER)"])
    assert sent == ['EXEC "Dial" "Local/1000@from-internal/n,30,g"', 'GET VARIABLE "DIALSTATUS"']
    assert destination(calls) == ["DIALSTATUS=ANSWER"]


def test_routes_extension_after_hangup_still_reads_dialstatus():
    on_connect = OnConnect("extension", extension="1000", context="from-internal", timeout_s=30)
    sent, calls, _ = run(on_connect, ["HANGUP", "200 result=-1"], ["200 result=1 (CANCEL)"])
    assert sent[-1] == 'GET VARIABLE "DIALSTATUS"'
    assert destination(calls) == ["DIALSTATUS=CANCEL"]


@pytest.mark.parametrize("replies,commands,dest", [
    ([["200 result=1 (TIMEOUT)"]], ['GET VARIABLE "QUEUESTATUS"'], "QUEUESTATUS=TIMEOUT"),
    ([["200 result=0"], ["200 result=1 (Local/100@agent/n)"]],
     ['GET VARIABLE "QUEUESTATUS"', 'GET VARIABLE "MEMBERINTERFACE"'], "QUEUE=CONNECTED"),
    ([["HANGUP", "200 result=0"], ["200 result=0"]],
     ['GET VARIABLE "QUEUESTATUS"', 'GET VARIABLE "MEMBERINTERFACE"'], "QUEUE=ABANDONED"),
])
def test_routes_queue(replies, commands, dest):
    on_connect = OnConnect("queue", queue="sales", timeout_s=300)
    sent, calls, _ = run(on_connect, ["200 result=0"], *replies)
    assert sent == ['EXEC "Queue" "sales,t,,,300"'] + commands
    assert destination(calls) == [dest]


def test_routes_conference():
    on_connect = OnConnect("conference", room="room1")
    sent, calls, _ = run(on_connect, ["HANGUP", "200 result=-1"], ["200 result=1 (HANGUP)"])
    assert sent == ['EXEC "ConfBridge" "room1"', 'GET VARIABLE "CONFBRIDGE_RESULT"']
    assert destination(calls) == ["CONFBRIDGE_RESULT=HANGUP"]


def test_routes_eof_during_exec_records_hangup():
    on_connect = OnConnect("conference", room="room1")
    sent, calls, _ = run(on_connect)
    assert sent == ['EXEC "ConfBridge" "room1"']
    assert destination(calls) == ["hangup"]


def test_routes_on_connect_failure_records_error_and_raises():
    transport = ScriptedAsterisk()
    recorder = FakeRecorder()
    router = Router(lambda name: {}[name], recorder, FakeClock(), "ab12")
    with pytest.raises(KeyError):
        router(make_channel(transport))
    assert destination(recorder.calls) == ["error"] and transport.sent == []


def test_routes_forged_token_records_nothing(caplog):
    sent, calls, _ = run(OnConnect("message", sounds=("hello-world",)),
                         args=("101", "ffffffff"))
    assert sent == [] and calls == [("lookup", 101, "ffffffff")]
    assert "attempt=101 script=connect uniqueid=1700000000.7 ignored" in caplog.text


@pytest.mark.parametrize("args", [(), ("101",), ("abc", TOKEN), ("101", "XYZXYZXY"),
                                  ("101", "0123"), ("-1", TOKEN), ("101", TOKEN.upper())])
def test_routes_malformed_ids_are_not_looked_up(args, caplog):
    sent, calls, _ = run(OnConnect("message", sounds=("x",)), args=args)
    assert sent == [] and calls == []
    assert "bad arguments" in caplog.text


def test_routes_unknown_script_closes(caplog):
    sent, calls, _ = run(OnConnect("message", sounds=("x",)), script="evil")
    assert sent == [] and calls == []
    assert "unknown script='evil'" in caplog.text


def test_routes_result_records_outcome_then_deletes_the_astdb_copy():
    sent, calls, _ = run(None, script=RESULT_SCRIPT,
                         args=("101", TOKEN, "ANSWER", "16", "12", "20"))
    assert calls == [("result", 101, "ANSWER", "16", 12, 20)]
    assert len(sent) == 1 and sent[0].startswith("DATABASE DEL") and "agi-campaign" in sent[0]
    assert '"ab12-101"' in sent[0]  # <instance>-<attempt>: the key the dialplan wrote


def test_routes_result_of_an_unrecorded_direct_answer_records_it_as_connect_would():
    handed = []
    sent, calls, _ = run(None, script=RESULT_SCRIPT, args=(
        "101", TOKEN, "ANSWER", "16", "", "", "direct"),
        on_recorded=lambda *call: handed.append(call))
    assert calls == [("outcome", 101, "ANSWER", "16", None, None)]  # not ended: channel is up
    assert handed == [(101, TOKEN, ("ANSWER", "16", None))]
    assert len(sent) == 1 and sent[0].startswith("DATABASE DEL")  # the row holds it now


@pytest.mark.parametrize("args", [("101", TOKEN, "", "", "", ""), ("101", TOKEN)])
def test_routes_result_with_empty_or_missing_values(args):
    _, calls, _ = run(None, script=RESULT_SCRIPT, args=args)
    assert calls == [("result", 101, "", "", None, None)]


def test_routes_result_unknown_attempt_is_logged_not_raised(caplog):
    _, calls, _ = run(None, script=RESULT_SCRIPT, args=("999", TOKEN, "BUSY", "17", "", ""))
    assert calls == [("result", 999, "BUSY", "17", None, None)]
    assert "attempt=999 script=result" in caplog.text


# ---- opt-out by keypress and collect (issue 11 item 2) --------------------------------------

OPT = OptOut("9", "optout", ("beep", "vm-goodbye"))


def test_routes_message_opt_out_key_lists_before_confirming():
    """STREAM FILE result=57 is '9': the opt-out is recorded (waited for) before the confirm
    sounds are sent, and the rest of the message is not played."""
    on_connect = OnConnect("message", sounds=("hello-world", "tt-monkeys"), repeat=2,
                           opt_out=OPT)
    sent, calls, clock = run(on_connect, ["200 result=57 endpos=4000"],
                             ["200 result=0 endpos=100"], ["200 result=0 endpos=100"])
    assert sent == ['STREAM FILE "hello-world" "9" "0"', 'STREAM FILE "beep" "" "0"',
                    'STREAM FILE "vm-goodbye" "" "0"']
    assert calls == [("lookup", 101, TOKEN), ("answer", 101, clock.now()),
                     ("opt_out", 101, "9", "optout", clock.now()),
                     ("destination", 101, "opted_out")]


def test_routes_message_opt_out_recorded_when_the_callee_hangs_up_at_once():
    on_connect = OnConnect("message", sounds=("hello-world",), opt_out=OPT)
    sent, calls, _ = run(on_connect, ["HANGUP", "200 result=57 endpos=4000"])
    assert sent == ['STREAM FILE "hello-world" "9" "0"']  # no confirm on a dead channel
    assert [c[0] for c in calls[2:]] == ["opt_out", "destination"]
    assert destination(calls) == ["opted_out"]


def test_routes_message_with_opt_out_played_whole_records_no_opt_out():
    on_connect = OnConnect("message", sounds=("hello-world", "beep"), opt_out=OPT)
    sent, calls, _ = run(on_connect, *[["200 result=0 endpos=8000"]] * 2)
    assert sent == ['STREAM FILE "hello-world" "9" "0"', 'STREAM FILE "beep" "9" "0"']
    assert [c[0] for c in calls] == ["lookup", "answer", "destination"]
    assert destination(calls) == ["played"]


def test_routes_message_opt_out_star_and_hash_keys():
    for key, code in (("*", 42), ("#", 35)):
        on_connect = OnConnect("message", sounds=("hello-world",),
                               opt_out=OptOut(key, "optout", ()))
        sent, calls, _ = run(on_connect, ["200 result=%d endpos=10" % code])
        assert sent == ['STREAM FILE "hello-world" "%s" "0"' % key]
        assert ("opt_out", 101, key, "optout") == calls[2][:4]


def test_routes_message_opt_out_confirm_failure_still_opted_out(caplog):
    on_connect = OnConnect("message", sounds=("hello-world",), opt_out=OPT)
    sent, calls, _ = run(on_connect, ["200 result=57 endpos=10"], ["200 result=-1 endpos=0"],
                         ["200 result=0"])
    assert sent[-1] == "NOOP" and destination(calls) == ["opted_out"]
    assert "confirm sound failed" in caplog.text


def test_routes_message_opt_out_record_failure_records_error_and_confirms_nothing():
    """No DNC entry, no confirmation: the callee must not hear a promise not kept."""
    class Failing(FakeRecorder):
        def record_opt_out(self, *args):
            raise RuntimeError("database down")

    on_connect = OnConnect("message", sounds=("hello-world",), opt_out=OPT)
    transport, recorder = ScriptedAsterisk(["200 result=57 endpos=10"]), Failing()
    router = Router(lambda name: on_connect, recorder, FakeClock(), "ab12")
    with pytest.raises(RuntimeError):
        router(make_channel(transport))
    assert transport.sent == ['STREAM FILE "hello-world" "9" "0"']
    assert destination(recorder.calls) == ["error"]


COLLECT = Collect(max_digits=3, timeout_s=4, sounds=("press-1", "beep"))


def test_routes_collect_reads_digits_after_the_message():
    on_connect = OnConnect("message", sounds=("hello-world",), collect=COLLECT)
    sent, calls, _ = run(on_connect, ["200 result=0 endpos=10"], ["200 result=0 endpos=10"],
                         ["200 result=42"])
    assert sent == ['STREAM FILE "hello-world" "" "0"',
                    'STREAM FILE "press-1" "0123456789*#" "0"',
                    'GET DATA "beep" "4000" "3"']
    assert ("digits", 101, "42") in calls and destination(calls) == ["played"]


def test_routes_collect_key_during_a_sound_then_the_rest_by_get_data():
    on_connect = OnConnect("message", sounds=("hello-world",), collect=COLLECT)
    sent, calls, _ = run(on_connect, ["200 result=0 endpos=10"], ["200 result=49 endpos=10"],
                         ["200 result=2 (timeout)"])
    assert sent[1:] == ['STREAM FILE "press-1" "0123456789*#" "0"',
                        'GET DATA "silence/1" "4000" "2"']
    assert ("digits", 101, "12") in calls


def test_routes_collect_timeout_without_keys_stores_empty():
    on_connect = OnConnect("message", sounds=("hello-world",),
                           collect=Collect(1, 2, ("beep",)))
    sent, calls, _ = run(on_connect, ["200 result=0 endpos=10"], ["200 result= (timeout)"])
    assert sent[1:] == ['GET DATA "beep" "2000" "1"']
    assert ("digits", 101, "") in calls and destination(calls) == ["played"]


def test_routes_collect_hangup_keeps_the_first_key():
    on_connect = OnConnect("message", sounds=("hello-world",), collect=COLLECT)
    sent, calls, _ = run(on_connect, ["200 result=0 endpos=10"], ["200 result=55 endpos=10"],
                         ["HANGUP", "200 result=-1"])
    assert ("digits", 101, "7") in calls
    assert destination(calls) == ["hangup_during_collect"]


def test_routes_collect_not_run_after_an_opt_out_or_a_hangup():
    on_connect = OnConnect("message", sounds=("hello-world",), opt_out=OPT, collect=COLLECT)
    _, calls, _ = run(on_connect, ["200 result=57 endpos=10"], ["200 result=0"], ["200 result=0"])
    assert not [c for c in calls if c[0] == "digits"]
    _, calls, _ = run(on_connect, ["HANGUP", "200 result=0 endpos=10"])
    assert not [c for c in calls if c[0] == "digits"]
    assert destination(calls) == ["hangup_during_message"]


# --- answering-machine detection ------------------------------------------------------------

AMD_COMMANDS = ['EXEC "AMD"', 'GET VARIABLE "AMDSTATUS"', 'GET VARIABLE "AMDCAUSE"']
MESSAGE = OnConnect("message", sounds=("hello-world",))


def amd_replies(status, cause):
    return [["200 result=0"], ["200 result=1 (%s)" % status], ["200 result=1 (%s)" % cause]]


def test_routes_amd_machine_hangup_records_before_hanging_up():
    sent, calls, _ = run(MESSAGE, *amd_replies("MACHINE", "LONGGREETING-1500-1500"),
                         ["200 result=1"], amd=AmdConfig("hangup"))
    assert sent == AMD_COMMANDS + ["HANGUP"]
    assert calls[2:] == [("amd", 101, "MACHINE", "LONGGREETING-1500-1500", True),
                         ("destination", 101, "machine_hangup")]


def test_routes_amd_machine_that_hung_up_first_is_still_machine_hangup():
    sent, calls, _ = run(MESSAGE, *amd_replies("MACHINE", "LONGGREETING-1500-1500"),
                         ["HANGUP", "511 result=-1 Command Not Permitted on a dead channel"],
                         amd=AmdConfig("hangup"))
    assert sent == AMD_COMMANDS + ["HANGUP"]
    assert destination(calls) == ["machine_hangup"]


def test_routes_amd_human_goes_on_to_the_destination():
    sent, calls, _ = run(MESSAGE, *amd_replies("HUMAN", "HUMAN-800-800"),
                         ["200 result=0 endpos=8000"], amd=AmdConfig("hangup"))
    assert sent == AMD_COMMANDS + ['STREAM FILE "hello-world" "" "0"']
    assert calls[2:] == [("amd", 101, "HUMAN", "HUMAN-800-800", False),
                         ("destination", 101, "played")]


def test_routes_amd_notsure_is_a_person():
    sent, calls, _ = run(MESSAGE, *amd_replies("NOTSURE", "TOOLONG-5000"),
                         ["200 result=0 endpos=8000"], amd=AmdConfig("hangup"))
    assert sent[-1] == 'STREAM FILE "hello-world" "" "0"'
    assert destination(calls) == ["played"]


def test_routes_amd_machine_continue_treated_as_person():
    sent, calls, _ = run(MESSAGE, *amd_replies("MACHINE", "LONGGREETING-1500-1500"),
                         ["200 result=0 endpos=8000"], amd=AmdConfig("continue"))
    assert sent == AMD_COMMANDS + ['STREAM FILE "hello-world" "" "0"']
    assert ("amd", 101, "MACHINE", "LONGGREETING-1500-1500", False) in calls
    assert destination(calls) == ["played"]


def test_routes_amd_machine_message_waits_for_silence_then_plays_amd_sounds():
    sent, calls, _ = run(MESSAGE, *amd_replies("MACHINE", "LONGGREETING-1500-1500"),
                         ["200 result=0"], ["200 result=0 endpos=8000"],
                         ["200 result=0 endpos=8000"],
                         amd=AmdConfig("message", ("vm-goodbye", "beep")))
    assert sent == AMD_COMMANDS + ['EXEC "WaitForSilence" "1500,1,20"',
                                   'STREAM FILE "vm-goodbye" "" "0"', 'STREAM FILE "beep" "" "0"']
    assert ("amd", 101, "MACHINE", "LONGGREETING-1500-1500", False) in calls
    assert destination(calls) == ["machine_message:played"]


def test_routes_amd_machine_hangs_up_while_waiting_for_the_beep():
    sent, calls, _ = run(MESSAGE, *amd_replies("MACHINE", "LONGGREETING-1500-1500"),
                         amd=AmdConfig("message", ("vm-goodbye",)))
    assert sent[-1] == 'EXEC "WaitForSilence" "1500,1,20"'
    assert destination(calls) == ["machine_message:hangup_during_message"]


def test_routes_amd_missing_application_skips_detection(caplog):
    sent, calls, _ = run(MESSAGE, ["200 result=-2"], ["200 result=0 endpos=8000"],
                         amd=AmdConfig("hangup"))
    assert sent == ['EXEC "AMD"', 'STREAM FILE "hello-world" "" "0"']
    assert not [c for c in calls if c[0] == "amd"]
    assert destination(calls) == ["played"]
    assert "answering-machine detection skipped" in caplog.text and "app_amd" in caplog.text


def test_routes_amd_hangup_during_detection_records_hangup():
    sent, calls, _ = run(MESSAGE, ["HANGUP", "200 result=-1"], ["200 result=1 (HANGUP)"],
                         ["200 result=1 (HANGUP)"], amd=AmdConfig("hangup"))
    assert sent == AMD_COMMANDS                # nothing is played to a closed line
    assert ("amd", 101, "HANGUP", "HANGUP", False) in calls
    assert destination(calls) == ["hangup_during_message"]


def test_routes_without_amd_sends_no_amd_command():
    sent, _, _ = run(MESSAGE, ["200 result=0 endpos=8000"], amd=None)
    assert sent == ['STREAM FILE "hello-world" "" "0"']


def test_routes_opt_out_key_during_collect_opts_out_and_is_no_answer():
    """The opt-out key pressed at the survey question opts out, as during the message."""
    on_connect = OnConnect("message", sounds=("hello-world",), opt_out=OPT,
                           collect=Collect(1, 2, ("press-1", "beep")))
    sent, calls, clock = run(on_connect, ["200 result=0 endpos=10"],
                             ["200 result=57 endpos=10"],         # '9' during press-1
                             ["200 result=0 endpos=10"], ["200 result=0 endpos=10"])
    assert sent == ['STREAM FILE "hello-world" "9" "0"',
                    'STREAM FILE "press-1" "0123456789*#" "0"',
                    'STREAM FILE "beep" "" "0"', 'STREAM FILE "vm-goodbye" "" "0"']
    assert ("opt_out", 101, "9", "optout", clock.now()) in calls
    assert not [c for c in calls if c[0] == "digits"] and destination(calls) == ["opted_out"]
