"""What happens on a FastAGI connection: the `connect` and `result` scripts.

`connect` runs on the answered `;1` half of the originated Local channel (already answered:
no ANSWER is sent); it plays the message or bridges the callee to an extension, a queue or a
conference, then records what happened as `dest_result`. With the campaign's `amd` set, it
first runs AMD() and records AMDSTATUS/AMDCAUSE; on MACHINE it hangs up (`hangup`: recorded
as dest_result `machine_hangup` before the hang-up, which makes the outcome `machine`), leaves
the amd sounds after the greeting (`message`) or goes on as with a person (`continue`).

A message can listen for keys (config ``opt_out`` and ``collect``). The opt-out key is an
escape digit of every STREAM FILE of the message: when pressed, the number goes on the
Do-Not-Call list at once, waited for (``Recorder.record_opt_out``: one transaction with the
attempt's ``opted_out`` and ``digits``), and only then are the confirm sounds played, so the
entry exists before the call can end; dest_result is ``opted_out``. ``collect`` runs after a
message played whole: its sounds interrupt on any key and GET DATA reads up to max_digits
(``#`` ends the input early); the keys ('' when none) go to ``Recorder.record_digits``.

On the direct call path (dialplan/README.md) `connect` runs on the callee's own channel, with a
third argument `direct`, and also records how the answered call ended once the destination is
done: DIALSTATUS ANSWER, the HANGUPCAUSE (16, normal clearing, when the callee is still on the
line: the dialplan hangs up next), the talk time, committed (`record_outcome`); it then sets
ACAMP_RECORDED=1 on the channel, so that the channel's hangup handler keeps no AstDB copy, and
hands the attempt to `on_recorded`, which ends it once Asterisk reports the channel gone.

`result` runs when a call ended: in the `;2` half's hangup handler (local path) or, for a call
not answered, in the `failed` extension (direct path); it records the call's outcome and
deletes the AstDB copy; it sends no other AGI command. On the direct path it also runs from the
callee channel's hangup handler when `connect` could not record an answered call (argument 7
`direct`): recorded as `connect` would have, ended at the channel's Hangup event.

Every log line carries `attempt=`, `script=` and `uniqueid=`. The FastAGI server catches
anything that escapes, so a failure here ends only this connection.
"""
import logging
import re

from agi_campaign.errors import AgiError, AgiHangup, NotFoundError
from agi_campaign.models import MACHINE_HANGUP
from agi_campaign.originate import ASTDB_FAMILY, astdb_key

log = logging.getLogger(__name__)

CONNECT_SCRIPT = "connect"
RESULT_SCRIPT = "result"
DIRECT = "direct"
"""`connect`'s third argument on the direct call path."""
NORMAL_CLEARING = "16"

_ATTEMPT_RE = re.compile(r"^[0-9]{1,18}$")
_TOKEN_RE = re.compile(r"^[0-9a-f]{8,64}$")

PLAYED = "played"
OPTED_OUT = "opted_out"
HANGUP_DURING_MESSAGE = "hangup_during_message"
HANGUP_DURING_COLLECT = "hangup_during_collect"
PLAYBACK_FAILED = "playback_failed"
HANGUP = "hangup"
ERROR = "error"
MACHINE_MESSAGE = "machine_message"
"""dest_result prefix for a message left on an answering machine: machine_message:played..."""

AMD_MACHINE = "MACHINE"
# WaitForSilence(<silence ms>,<iterations>,<timeout s>) after AMD() said MACHINE: the greeting
# goes on after AMD decides (LONGGREETING after 1.5 s), so the message starts once the line
# has been quiet this long after the beep, or after the timeout at the latest.
AMD_SILENCE_MS = 1500
AMD_SILENCE_TIMEOUT_S = 20


class Router:
    """handler(channel) for FastAgiServer, dispatching on the script name.

    `on_connect_for(campaign_name) -> OnConnect`; `recorder` has lookup, record_answer,
    record_destination and record_result (agi_campaign.results.Recorder); `clock.now()`;
    `instance` is this deployment's name (the AstDB keys of its result copies);
    `amd_for(campaign_name) -> config.AmdConfig or None` (None, the default: no answering-
    machine detection; with one, the recorder needs record_amd too); `on_recorded(attempt_id,
    token, (dial_status, hangup_cause, billsec_s))`: a direct path's answered call was recorded
    (the engine ends it once the channel is gone).
    """

    def __init__(self, on_connect_for, recorder, clock, instance, amd_for=None,
                 on_recorded=None):
        self._instance = instance
        self._on_recorded = on_recorded or (lambda attempt_id, token, outcome: None)
        self._on_connect_for = on_connect_for
        self._amd_for = amd_for or (lambda name: None)
        self._recorder = recorder
        self._clock = clock
        self._scripts = {CONNECT_SCRIPT: self._connect, RESULT_SCRIPT: self._result}

    def __call__(self, channel):
        route = self._scripts.get(channel.script)
        if route is None:
            log.warning("FastAGI unknown script=%r uniqueid=%s peer=%s; closing",
                        channel.script, channel.uniqueid, channel.peer)
            return
        ids = _ids(channel)
        if ids is None:
            return
        try:
            route(channel, *ids)
        except NotFoundError as err:
            log.warning("attempt=%s script=%s uniqueid=%s ignored: %s",
                        ids[0], channel.script, channel.uniqueid, err)

    # --- connect ---------------------------------------------------------------------------------

    def _connect(self, channel, attempt_id, token):
        """lookup -> record_answer -> destination -> record_destination (always, once); on the
        direct path record_outcome in place of record_destination (_record_call)."""
        campaign = self._recorder.lookup(attempt_id, token)
        answered_at = self._clock.now()
        self._recorder.record_answer(attempt_id, token, answered_at)
        dest_result = ERROR
        try:
            on_connect = self._on_connect_for(campaign)
            keys = Keys(self._recorder, attempt_id, token, self._clock)
            amd = self._amd_for(campaign)
            if amd is None:
                dest_result = run_destination(channel, on_connect, keys)
            else:
                dest_result = self._detect_then_route(channel, attempt_id, token, amd,
                                                      on_connect, keys)
        except AgiHangup as err:
            dest_result = HANGUP
            log.debug("attempt=%s script=%s uniqueid=%s hung up: %s",
                     attempt_id, channel.script, channel.uniqueid, err)
        finally:
            if channel.args[2:3] == (DIRECT,):
                self._record_call(channel, attempt_id, token, dest_result, answered_at)
            else:
                self._recorder.record_destination(attempt_id, token, dest_result,
                                                  self._clock.now())
        log.debug("attempt=%s script=%s uniqueid=%s campaign=%s dest_result=%s",
                 attempt_id, channel.script, channel.uniqueid, campaign, dest_result)

    def _detect_then_route(self, channel, attempt_id, token, amd, on_connect, keys):
        """AMD(), record its result, then the action for a machine or the destination."""
        detected = detect_machine(channel)
        if detected is None:
            return run_destination(channel, on_connect, keys)
        status, cause = detected
        machine = status == AMD_MACHINE and amd.action != "continue"
        hang_up = machine and amd.action == "hangup"
        # Recorded (committed, for a hang-up) before the side effect it decides.
        self._recorder.record_amd(attempt_id, token, status, cause, machine_hangup=hang_up)
        log.debug("attempt=%s script=%s uniqueid=%s amdstatus=%s amdcause=%s action=%s",
                  attempt_id, channel.script, channel.uniqueid, status, cause,
                  amd.action if status == AMD_MACHINE else "-")
        if hang_up:
            try:
                channel.command("HANGUP")
            except AgiHangup:
                pass  # the machine hung up first: the outcome is `machine` all the same
            return MACHINE_HANGUP
        if machine:
            return leave_message(channel, amd)
        return run_destination(channel, on_connect, keys)

    def _record_call(self, channel, attempt_id, token, dest_result, answered_at):
        """Direct path: how the answered call ended, committed before the channel may go; then
        ACAMP_RECORDED=1 (no AstDB copy needed) and on_recorded. If the write fails, nothing
        is set: the hangup handler keeps the AstDB copy that recovery reads."""
        cause = NORMAL_CLEARING  # Hangup(), which the dialplan runs next, clears normally
        if channel.hung_up:
            try:
                cause = channel.get_variable("HANGUPCAUSE") or ""
            except AgiError:
                cause = ""
        talk_s = int(max((self._clock.now() - answered_at).total_seconds(), 0))
        self._recorder.record_outcome(attempt_id, token, "ANSWER", cause, talk_s, dest_result)
        try:
            channel.command("SET VARIABLE", "ACAMP_RECORDED", "1")
        except AgiError as err:
            log.debug("attempt=%s could not set ACAMP_RECORDED: %s", attempt_id, err)
        # Its Hangup event cannot come before this session ends: the channel is in it.
        self._on_recorded(attempt_id, token, ("ANSWER", cause, talk_s))

    # --- result ----------------------------------------------------------------------------------

    def _result(self, channel, attempt_id, token):
        """record_result from the dialplan's arguments, then the AstDB copy is deleted. On the
        direct path an answered call that `connect` could not record comes from its channel's
        hangup handler (7th argument `direct`), before the channel is gone: recorded as
        `connect` would (record_outcome, on_recorded), not ended yet."""
        rest = list(channel.args[2:7]) + [""] * (5 - len(channel.args[2:7]))
        dial_status, hangup_cause, answered, dialed, path = rest
        if path == DIRECT and dial_status == "ANSWER":
            self._recorder.record_outcome(attempt_id, token, dial_status, hangup_cause, None,
                                          None)
            self._on_recorded(attempt_id, token, (dial_status, hangup_cause, None))
        else:
            self._recorder.record_result(
                attempt_id, token, dial_status, hangup_cause, _seconds(answered),
                _seconds(dialed), self._clock.now())
        log.debug("attempt=%s script=%s uniqueid=%s dialstatus=%s hangupcause=%s",
                 attempt_id, channel.script, channel.uniqueid, dial_status, hangup_cause)
        _forget_saved_result(channel, attempt_id, astdb_key(self._instance, attempt_id))


class Keys:
    """Where the keys a callee presses go: the attempt `attempt_id` on `recorder`."""

    def __init__(self, recorder, attempt_id, token, clock):
        self._recorder = recorder
        self._attempt_id = attempt_id
        self._token = token
        self._clock = clock

    def opted_out(self, digit, dnc_list):
        """Committed when this returns (the number is on the list)."""
        self._recorder.record_opt_out(self._attempt_id, self._token, digit, dnc_list,
                                      self._clock.now())

    def collected(self, digits):
        self._recorder.record_digits(self._attempt_id, self._token, digits)


def _forget_saved_result(channel, attempt_id, key):
    """Delete the copy of the result the dialplan kept in AstDB: it is recorded (committed)
    now, since record_result returned.

    The copy (family ASTDB_FAMILY, key `<instance>-<attempt id>`) is what recovery reads when
    this FastAGI call could not be made (service down); DATABASE DEL is allowed on a dead
    channel.
    """
    try:
        channel.command("DATABASE DEL", ASTDB_FAMILY, key)
    except AgiError as err:
        log.debug("attempt=%s could not delete the AstDB copy: %s", attempt_id, err)


def _ids(channel):
    """(attempt_id: int, token: str) from agi_arg_1/2, or None (logged) when malformed."""
    args = channel.args
    attempt, token = (args + ("", ""))[:2]
    if not _ATTEMPT_RE.match(attempt) or not _TOKEN_RE.match(token):
        log.warning("FastAGI script=%s uniqueid=%s peer=%s: bad arguments attempt=%r; "
                    "expected <digits>,<hex token>; closing",
                    channel.script, channel.uniqueid, channel.peer, attempt[:20])
        return None
    return int(attempt), token


def _seconds(text):
    """ANSWEREDTIME/DIALEDTIME ('' when the call never got that far) -> int or None."""
    text = text.strip()
    return int(text) if text.isdigit() else None


def run_destination(channel, on_connect, keys=None):
    """Run on_connect on the channel; the dest_result string to record. `keys` (a Keys)
    receives an opt-out and collected digits; without it a message listens for no key."""
    runner = _DESTINATIONS.get(on_connect.type)
    if runner is None:
        raise AgiError("on_connect type %r is not message, extension, queue or conference"
                       % (on_connect.type,))
    if runner is play_message:
        return play_message(channel, on_connect, keys)
    return runner(channel, on_connect)


def detect_machine(channel):
    """EXEC AMD (amd.conf's settings) then (AMDSTATUS, AMDCAUSE); None when Asterisk has no
    AMD application (app_amd not loaded: logged, the call goes on as with a person).

    AMDSTATUS: MACHINE, HUMAN, NOTSURE or HANGUP; AMDCAUSE e.g. LONGGREETING-1500-1500,
    HUMAN-800-800, TOOLONG-5000. Both are read even after a hang-up (GET VARIABLE works on a
    dead channel).
    """
    try:
        channel.appexec("AMD")
    except AgiHangup:
        raise
    except AgiError as err:
        log.warning("uniqueid=%s answering-machine detection skipped: %s (load app_amd.so, "
                    "see dialplan/README.md)", channel.uniqueid, err)
        return None
    return channel.get_variable("AMDSTATUS"), channel.get_variable("AMDCAUSE")


def leave_message(channel, amd):
    """On a machine: wait for the silence after the beep (WaitForSilence), then play the amd
    sounds once. 'machine_message:<played|hangup_during_message|playback_failed>'."""
    try:
        channel.appexec("WaitForSilence", "%d,1,%d" % (AMD_SILENCE_MS, AMD_SILENCE_TIMEOUT_S))
    except AgiHangup:
        return "%s:%s" % (MACHINE_MESSAGE, HANGUP_DURING_MESSAGE)
    except AgiError as err:
        log.warning("uniqueid=%s WaitForSilence failed (%s); playing at once (load "
                    "app_waitforsilence.so)", channel.uniqueid, err)
    return "%s:%s" % (MACHINE_MESSAGE, play_sounds(channel, amd.sounds))


def play_message(channel, on_connect, keys=None):
    """STREAM FILE each sound `repeat` times; stops at the first sign of hangup; then
    `collect`, if configured.

    'played', 'opted_out' (see the module's docstring), 'hangup_during_message',
    'hangup_during_collect', or 'playback_failed' (result -1 on a live channel, e.g. a missing
    sound file: logged, not retried). repeat None or below 1 plays once.
    """
    sounds = tuple(on_connect.sounds or ())
    opt_out = on_connect.opt_out if keys is not None else None
    collect = on_connect.collect if keys is not None else None
    escape = opt_out.digit if opt_out is not None else ""
    try:
        pressed = _play_sounds(channel, sounds * max(on_connect.repeat or 1, 1), escape)
    except AgiHangup:
        return HANGUP_DURING_MESSAGE
    except AgiError as err:
        log.warning("uniqueid=%s playback failed: %s", channel.uniqueid, err)
        return PLAYBACK_FAILED
    if opt_out is not None and pressed == opt_out.digit:  # recorded even if the callee hangs up now
        keys.opted_out(pressed, opt_out.dnc_list)
        log.debug("uniqueid=%s opted out with key %s onto list %s", channel.uniqueid, pressed,
                  opt_out.dnc_list)
        _play_quietly(channel, opt_out.confirm_sounds)
        return OPTED_OUT
    if channel.hung_up:
        return HANGUP_DURING_MESSAGE
    if collect is not None:
        return _collect(channel, collect, keys, opt_out)
    return PLAYED


ALL_KEYS = "0123456789*#"


def play_sounds(channel, sounds):
    """Each sound once, listening for no key: PLAYED, HANGUP_DURING_MESSAGE or
    PLAYBACK_FAILED (a machine's message)."""
    try:
        _play_sounds(channel, tuple(sounds or ()), "")
    except AgiHangup:
        return HANGUP_DURING_MESSAGE
    except AgiError as err:
        log.warning("uniqueid=%s playback failed: %s", channel.uniqueid, err)
        return PLAYBACK_FAILED
    return HANGUP_DURING_MESSAGE if channel.hung_up else PLAYED


def _play_sounds(channel, sounds, escape):
    """STREAM FILE each sound until one of the `escape` keys is pressed: that key, or ''.
    AgiHangup when the channel hangs up before the last sound (or during one)."""
    for sound in sounds:
        if channel.hung_up:
            raise AgiHangup("the channel hung up during the message")
        pressed = channel.stream_file(sound, escape)
        if pressed:
            return pressed
    return ""


def _collect(channel, collect, keys, opt_out=None):
    """Play collect.sounds, any key interrupting; GET DATA reads the rest (up to max_digits,
    timeout_s after the last sound or key, `#` ends early and is not kept). The opt-out key,
    pressed first, opts out here too (as during the message): it is never taken as an
    answer."""
    sounds = tuple(collect.sounds)
    digits = ""
    try:
        for sound in sounds[:-1]:
            digits = channel.stream_file(sound, ALL_KEYS)
            if digits:
                break
        if digits == "#":
            digits = ""
        elif not digits:
            digits = channel.get_data(sounds[-1], collect.timeout_s * 1000, collect.max_digits)
        elif collect.max_digits > 1:
            digits += channel.get_data("silence/1", collect.timeout_s * 1000,
                                       collect.max_digits - 1)
    except AgiHangup:
        keys.collected(digits)
        return HANGUP_DURING_COLLECT
    except AgiError as err:
        log.warning("uniqueid=%s collect failed: %s", channel.uniqueid, err)
        keys.collected(digits)
        return PLAYBACK_FAILED
    if opt_out is not None and digits[:1] == opt_out.digit:
        keys.opted_out(opt_out.digit, opt_out.dnc_list)
        _play_quietly(channel, opt_out.confirm_sounds)
        return OPTED_OUT
    keys.collected(digits)
    return PLAYED


def _play_quietly(channel, sounds):
    """Play `sounds` (no key interrupts); a hangup or a failure only ends the playing."""
    try:
        for sound in sounds:
            if channel.hung_up:
                return
            channel.stream_file(sound)
    except AgiHangup:
        return
    except AgiError as err:
        log.warning("uniqueid=%s confirm sound failed: %s", channel.uniqueid, err)


def dial_extension(channel, on_connect):
    """EXEC Dial "Local/<ext>@<context>/n,<timeout>,g" then DIALSTATUS (`g`: result 0, not -1)."""
    channel.appexec("Dial", "Local/%s@%s/n,%s,g" % (
        on_connect.extension, on_connect.context, _opt(on_connect.timeout_s)))
    return "DIALSTATUS=%s" % channel.get_variable("DIALSTATUS")


def enter_queue(channel, on_connect):
    """EXEC Queue "<queue>,t,,,<timeout>" then QUEUESTATUS.

    QUEUESTATUS is set only when the caller left unanswered (TIMEOUT, FULL, JOINEMPTY...).
    When it is empty, MEMBERINTERFACE (set when queues.conf has setinterfacevar=yes) tells a
    connected call from an abandoned one.
    """
    channel.appexec("Queue", "%s,t,,,%s" % (on_connect.queue, _opt(on_connect.timeout_s)))
    status = channel.get_variable("QUEUESTATUS")
    if status:
        return "QUEUESTATUS=%s" % status
    if channel.get_variable("MEMBERINTERFACE"):
        return "QUEUE=CONNECTED"
    return "QUEUE=ABANDONED"


def join_conference(channel, on_connect):
    """EXEC ConfBridge "<room>" then CONFBRIDGE_RESULT."""
    channel.appexec("ConfBridge", on_connect.room)
    return "CONFBRIDGE_RESULT=%s" % channel.get_variable("CONFBRIDGE_RESULT")


def _opt(value):
    return "" if value is None else str(value)


_DESTINATIONS = {
    "message": play_message,
    "extension": dial_extension,
    "queue": enter_queue,
    "conference": join_conference,
}
