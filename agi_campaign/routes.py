"""What happens on a FastAGI connection: the `connect` and `result` scripts.

`connect` runs on the answered `;1` half of the originated Local channel (already answered:
no ANSWER is sent); it plays the message or bridges the callee to an extension, a queue or a
conference, then records what happened as `dest_result`. `result` runs in the hangup handler
of the `;2` half and records the call's outcome; it sends no AGI command.

Every log line carries `attempt=`, `script=` and `uniqueid=`. The FastAGI server catches
anything that escapes, so a failure here ends only this connection.
"""
import logging
import re

from agi_campaign.errors import AgiError, AgiHangup, NotFoundError
from agi_campaign.originate import ASTDB_FAMILY, astdb_key

log = logging.getLogger(__name__)

CONNECT_SCRIPT = "connect"
RESULT_SCRIPT = "result"

_ATTEMPT_RE = re.compile(r"^[0-9]{1,18}$")
_TOKEN_RE = re.compile(r"^[0-9a-f]{8,64}$")

PLAYED = "played"
HANGUP_DURING_MESSAGE = "hangup_during_message"
PLAYBACK_FAILED = "playback_failed"
HANGUP = "hangup"
ERROR = "error"


class Router:
    """handler(channel) for FastAgiServer, dispatching on the script name.

    `on_connect_for(campaign_name) -> OnConnect`; `recorder` has lookup, record_answer,
    record_destination and record_result (agi_campaign.results.Recorder); `clock.now()`;
    `instance` is this deployment's name (the AstDB keys of its result copies).
    """

    def __init__(self, on_connect_for, recorder, clock, instance):
        self._instance = instance
        self._on_connect_for = on_connect_for
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
        """lookup -> record_answer -> destination -> record_destination (always, once)."""
        campaign = self._recorder.lookup(attempt_id, token)
        self._recorder.record_answer(attempt_id, token, self._clock.now())
        dest_result = ERROR
        try:
            on_connect = self._on_connect_for(campaign)
            dest_result = run_destination(channel, on_connect)
        except AgiHangup as err:
            dest_result = HANGUP
            log.debug("attempt=%s script=%s uniqueid=%s hung up: %s",
                     attempt_id, channel.script, channel.uniqueid, err)
        finally:
            self._recorder.record_destination(attempt_id, token, dest_result, self._clock.now())
        log.debug("attempt=%s script=%s uniqueid=%s campaign=%s dest_result=%s",
                 attempt_id, channel.script, channel.uniqueid, campaign, dest_result)

    # --- result ----------------------------------------------------------------------------------

    def _result(self, channel, attempt_id, token):
        """record_result from the hangup handler's arguments; no AGI command is sent."""
        rest = list(channel.args[2:6]) + [""] * (4 - len(channel.args[2:6]))
        dial_status, hangup_cause, answered, dialed = rest
        self._recorder.record_result(
            attempt_id, token, dial_status, hangup_cause, _seconds(answered), _seconds(dialed),
            self._clock.now())
        log.debug("attempt=%s script=%s uniqueid=%s dialstatus=%s hangupcause=%s",
                 attempt_id, channel.script, channel.uniqueid, dial_status, hangup_cause)
        _forget_saved_result(channel, attempt_id, astdb_key(self._instance, attempt_id))


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


def run_destination(channel, on_connect):
    """Run on_connect on the channel; the dest_result string to record."""
    runner = _DESTINATIONS.get(on_connect.type)
    if runner is None:
        raise AgiError("on_connect type %r is not message, extension, queue or conference"
                       % (on_connect.type,))
    return runner(channel, on_connect)


def play_message(channel, on_connect):
    """STREAM FILE each sound `repeat` times; stops at the first sign of hangup.

    'played', 'hangup_during_message', or 'playback_failed' (result -1 on a live channel,
    e.g. a missing sound file: logged, not retried). repeat None or below 1 plays once.
    """
    sounds = tuple(on_connect.sounds or ())
    try:
        for _ in range(max(on_connect.repeat or 1, 1)):
            for sound in sounds:
                if channel.hung_up:
                    return HANGUP_DURING_MESSAGE
                channel.stream_file(sound)
    except AgiHangup:
        return HANGUP_DURING_MESSAGE
    except AgiError as err:
        log.warning("uniqueid=%s playback failed: %s", channel.uniqueid, err)
        return PLAYBACK_FAILED
    return HANGUP_DURING_MESSAGE if channel.hung_up else PLAYED


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
