"""Sans-IO FastAGI protocol: the environment, replies and command lines. No sockets here.

Facts this module relies on (Asterisk 22 res_agi.c; docs/ASTERISK.md):
- The environment is `agi_<name>: <value>` lines ended by a blank line; `agi_network_script`
  holds everything after the URL's first `/`, query string included; extra AGI() arguments
  arrive as `agi_arg_1..N`.
- Replies are `200 result=<n>[ (data)][ endpos=<n>]`; `100 result=0 Trying...` is interim
  (GOSUB); 510 unknown command; 511 command not permitted on a dead channel; 520 usage error,
  possibly multi-line (`520-...` lines ended by `520 End of proper usage.`).
- `HANGUP` is written in-line when the channel hangs up and may precede any reply.
- Arguments are tokenised by parse_args(): whitespace separates, `"..."` groups, `\\"` and
  `\\\\` escape. A newline ends the command, so a newline inside an argument would inject a
  second command: quote() refuses CR, LF and NUL instead of dropping them silently.
"""
import dataclasses
import re

from agi_campaign.errors import AgiError, AgiHangup, AgiProtocolError

MAX_ENV_LINES = 128
"""More environment lines than this is not Asterisk (it sends ~22 plus one per argument)."""

MAX_USAGE_LINES = 200
"""Bound on a multi-line 520 usage text, so a peer cannot grow our memory without limit."""

HANGUP_LINE = "HANGUP"

_ENV_RE = re.compile(r"^(agi_[A-Za-z0-9_]+):\s*(.*)$")
_ARG_RE = re.compile(r"^agi_arg_([1-9][0-9]{0,3})$")
_REPLY_RE = re.compile(r"^([0-9]{3})([ -])(.*)$")
_RESULT_RE = re.compile(r"^result=(-?[0-9*#A-D]*)(?:\s+(.*))?$")
_ENDPOS_RE = re.compile(r"(?:^|\s+)endpos=(-?[0-9]+)$")
_COMMAND_RE = re.compile(r"^[A-Za-z]+(?: [A-Za-z]+)*$")
_FORBIDDEN = ("\r", "\n", "\0")


class AgiEnv(dict):
    """The `agi_*` environment of one FastAGI connection (a dict of the raw keys).

    `script` is agi_network_script up to `?` ('' when absent, as for a local AGI);
    `args` the agi_arg_N values in numeric order (agi_arg_10 after agi_arg_9).
    """

    @property
    def script(self):
        return self.get("agi_network_script", "").split("?", 1)[0]

    @property
    def args(self):
        numbered = []
        for key, value in self.items():
            match = key.startswith("agi_arg_") and _ARG_RE.match(key)
            if match:
                numbered.append((int(match.group(1)), value))
        return tuple(value for _, value in sorted(numbered))

    @property
    def uniqueid(self):
        return self.get("agi_uniqueid", "")

    @property
    def channel(self):
        return self.get("agi_channel", "")


@dataclasses.dataclass(frozen=True)
class Reply:
    """One parsed reply line.

    `result` stays the raw token (a str): GET DATA returns digit strings where leading zeros
    matter, and `result=` may be empty. `data` is the text in parentheses, or the free text
    after the result (`Trying...`, `Gosub complete`), '' when absent. `endpos` is an int or None.
    """

    code: int
    result: str
    data: str = ""
    endpos: int | None = None

    @property
    def is_final(self):
        """False for the interim 100 (Trying) and the first line of a multi-line 520."""
        return self.code == 200


def decode_line(raw):
    """Bytes from the socket -> str without the line ending; bad UTF-8 is replaced, not fatal.

    Caller ID names are user-controlled and may be in any encoding; refusing them would drop
    the call for no benefit.
    """
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def parse_env(lines, max_lines=MAX_ENV_LINES):
    """Parse environment lines (without the terminating blank line) into an AgiEnv.

    A blank line ends the environment (anything after it is ignored). Raises AgiProtocolError
    for a line that is not `agi_<name>: <value>`, a duplicate key, a malformed agi_arg_N, or
    more than `max_lines` lines.
    """
    env = AgiEnv()
    for count, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if line == "":
            break
        if count > max_lines:
            raise AgiProtocolError(
                "AGI environment longer than %d lines; the peer is not Asterisk" % max_lines)
        key, value = env_item(line)
        if key in env:
            raise AgiProtocolError("AGI environment repeats key %r" % key)
        env[key] = value
    return env


def env_from_items(items, max_lines=MAX_ENV_LINES):
    """parse_env for a reader that checked each line with env_item() as it arrived: an AgiEnv
    of those (key, value) pairs, with parse_env's other checks (a repeated key, more than
    `max_lines` lines), so that no line is parsed twice."""
    env = AgiEnv()
    for count, (key, value) in enumerate(items, start=1):
        if count > max_lines:
            raise AgiProtocolError(
                "AGI environment longer than %d lines; the peer is not Asterisk" % max_lines)
        if key in env:
            raise AgiProtocolError("AGI environment repeats key %r" % key)
        env[key] = value
    return env


def env_item(line):
    """(key, value) of one environment line; AgiProtocolError if it is not
    `agi_<name>: <value>` or is a malformed agi_arg_N."""
    match = _ENV_RE.match(line)
    if not match:
        raise AgiProtocolError(
            "AGI environment line %r is not 'agi_<name>: <value>'" % _clip(line))
    key, value = match.group(1), (match.group(2) or "").strip()
    if key.startswith("agi_arg_") and not _ARG_RE.match(key):
        raise AgiProtocolError("AGI environment key %r is not agi_arg_<1..9999>" % key)
    return key, value


def parse_reply(line):
    """Parse one reply line into a Reply, or raise the typed error it stands for.

    200 -> Reply. 100 -> Reply(code=100) (interim: read the next line). `520-...` -> Reply(code=520)
    (usage text follows; ReplyParser collects it). 510 and a final `520 ...` -> AgiError;
    511 -> AgiHangup; anything else (HANGUP included, see ReplyParser) -> AgiProtocolError.
    """
    line = line.rstrip("\r\n")
    match = _REPLY_RE.match(line)
    if not match:
        raise AgiProtocolError("unexpected AGI reply %r" % _clip(line))
    code, sep, rest = int(match.group(1)), match.group(2), match.group(3)
    if code == 520:
        if sep == "-":
            return Reply(520, "", rest)
        raise AgiError("Asterisk rejected the command syntax: %s" % rest)
    if sep != " ":
        raise AgiProtocolError("unexpected AGI reply %r" % _clip(line))
    if code in (200, 100):
        return _parse_result(code, rest, line)
    if code == 510:
        raise AgiError("Asterisk does not know the command (510 %s)" % rest)
    if code == 511:
        raise AgiHangup("the channel has hung up (511 %s)" % rest)
    raise AgiProtocolError("unexpected AGI reply code %d in %r" % (code, _clip(line)))


def _parse_result(code, rest, line):
    match = _RESULT_RE.match(rest)
    if not match:
        raise AgiProtocolError("AGI reply without result=: %r" % _clip(line))
    result, tail = match.group(1), (match.group(2) or "").strip()
    endpos = None
    found = _ENDPOS_RE.search(tail)
    if found:
        endpos = int(found.group(1))
        tail = tail[:found.start()].strip()
    if tail.startswith("(") and tail.endswith(")"):
        tail = tail[1:-1]
    return Reply(code, result, tail, endpos)


class ReplyParser:
    """Turns reply lines into final Replies for one connection; remembers HANGUP.

    feed(line) returns a Reply when a command's answer is complete, None when more lines are
    needed (HANGUP, 100 Trying, 520 usage text), or raises. `hung_up` becomes True on a HANGUP
    line or a 511 and stays True: later commands still run (GET VARIABLE works on a dead
    channel), so HANGUP is a flag, not an error.
    """

    def __init__(self):
        self.hung_up = False
        self._usage = None

    def feed(self, line):
        line = line.rstrip("\r\n")
        if self._usage is not None:
            return self._feed_usage(line)
        if line == HANGUP_LINE:
            self.hung_up = True
            return None
        try:
            reply = parse_reply(line)
        except AgiHangup:
            self.hung_up = True
            raise
        if reply.code == 520:
            self._usage = [reply.data]
            return None
        return reply if reply.is_final else None

    def _feed_usage(self, line):
        if line.startswith("520 "):
            usage, self._usage = self._usage, None
            raise AgiError("Asterisk rejected the command syntax: %s" % " / ".join(usage))
        self._usage.append(line)
        if len(self._usage) > MAX_USAGE_LINES:
            raise AgiProtocolError("520 usage text longer than %d lines" % MAX_USAGE_LINES)
        return None


def quote(arg):
    """One AGI argument: wrapped in double quotes with `\\` and `"` escaped.

    int/float are formatted with str(). CR, LF and NUL raise AgiError: stripping them would
    silently change what is played or dialed, and letting them through injects a command.
    """
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        arg = str(arg)
    if not isinstance(arg, str):
        raise TypeError("AGI argument must be str, int or float, got %r" % (arg,))
    for char in _FORBIDDEN:
        if char in arg:
            raise AgiError("AGI argument %r contains a line break or NUL; refusing to send it"
                           % _clip(arg))
    return '"%s"' % arg.replace("\\", "\\\\").replace('"', '\\"')


def format_command(command, args=()):
    """`COMMAND "arg1" "arg2"\\n`: the command word(s) as given, every argument quoted."""
    if not _COMMAND_RE.match(command):
        raise AgiError("AGI command name %r must be words of letters" % _clip(command))
    return " ".join([command] + [quote(arg) for arg in args]) + "\n"


def _clip(text, limit=120):
    return text if len(text) <= limit else text[:limit] + "..."
