"""AMI framing without I/O: an incremental message parser and an action encoder.

Wire format (Asterisk 22, main/manager.c): the server's first line is the banner
``Asterisk Call Manager/11.0.0`` with no blank line after it; every later message is
``Key: Value`` lines ended by an empty line. Asterisk writes CRLF; LF alone is accepted too.

Decisions:
- Messages are :class:`AmiMessage` objects: a plain ``dict`` of the *first* value of every key
  (so ``msg['Event']`` is always a str), plus ``msg.getall(key)`` with every value of a key in
  arrival order. Repeated keys are normal for ``Output`` (one per line of CLI output in the
  ``Command`` action) and ``ChanVariable`` (manager.conf ``channelvars``); ``getall`` works
  for any key, so no list of "multi keys" has to be kept up to date.
- Exactly one space after the colon is removed from a value (Asterisk writes ``"%s: %s"``);
  further leading spaces belong to the value (``Output`` lines are column-aligned).
- Bytes are decoded as UTF-8 with replacement: caller names may be Latin-1, and a bad byte must
  not cost us the connection.
- Bounded: a line longer than :data:`MAX_LINE_BYTES` or a message with more than
  :data:`MAX_MESSAGE_LINES` lines, and any non-empty line without ``Key:``, raise
  :class:`~agi_campaign.errors.AmiError`. The peer is then not speaking AMI: the caller drops
  the connection. After an error the parser stays broken (every later ``feed`` raises).
- ``encode_action`` refuses CR, LF and NUL anywhere in keys and values, so no value taken from
  a CSV file can add a header or a second action.
"""
import re

from agi_campaign.errors import AmiError

MAX_LINE_BYTES = 64 * 1024
MAX_MESSAGE_LINES = 1000
BANNER_KEY = "Banner"
_FORBIDDEN = ("\r", "\n", "\x00")


class AmiMessage(dict):
    """One AMI message: dict of first values, plus :meth:`getall` for repeated keys."""

    def __init__(self, pairs=()):
        super().__init__()
        self._pairs = list(pairs)
        for key, value in self._pairs:  # in arrival order, the first value of each key
            self.setdefault(key, value)

    def add(self, key, value):
        """Append one header; the dict keeps the first value of each key."""
        self.setdefault(key, value)
        self._pairs.append((key, value))

    def getall(self, key):
        """Every value of ``key`` in arrival order ([] when absent)."""
        return [value for name, value in self._pairs if name == key]


class AmiParser:
    """Incremental AMI parser for one connection: ``feed(bytes) -> [AmiMessage, ...]``."""

    def __init__(self, expect_banner=True):
        self._buffer = bytearray()
        self._pairs = []
        self._expect_banner = expect_banner
        self._error = None

    def feed(self, data):
        """Add received bytes; return the messages they completed (possibly none)."""
        if self._error is not None:
            raise AmiError("AMI parser already failed: %s" % self._error)
        try:
            return self._feed(data)
        except AmiError as exc:
            self._error = exc
            raise

    def _feed(self, data):
        self._buffer += data
        end = self._buffer.rfind(b"\n")
        if end < 0:
            _check_length(self._buffer)
            return []
        lines = bytes(self._buffer[:end]).split(b"\n")  # every complete line, split at once
        del self._buffer[:end + 1]
        messages = []
        for line in lines:
            message = self._line(_check_length(line))
            if message is not None:
                messages.append(message)
        _check_length(self._buffer)
        return messages

    def _line(self, raw):
        """Handle one line (without LF); return a completed message or None."""
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if self._expect_banner:
            self._expect_banner = False
            if text and ":" not in text:
                return AmiMessage([(BANNER_KEY, text)])
        if not text:
            return self._end_message()
        if len(self._pairs) >= MAX_MESSAGE_LINES:
            raise AmiError("AMI message has more than %d lines; the peer is not speaking AMI"
                           % MAX_MESSAGE_LINES)
        self._pairs.append(parse_header(text))
        return None

    def _end_message(self):
        """A blank line: close the current message (blank lines between messages are skipped)."""
        if not self._pairs:
            return None
        message = AmiMessage(self._pairs)
        self._pairs = []
        return message


def _check_length(line):
    if len(line) > MAX_LINE_BYTES:
        raise AmiError("AMI line longer than %d bytes; the peer is not speaking AMI"
                       % MAX_LINE_BYTES)
    return line


_CONTROL = re.compile("[\x00-\x1f]")


def parse_header(text):
    """``'Key: Value'`` -> ``('Key', 'Value')``; one space after the colon is dropped."""
    key, sep, value = text.partition(":")
    if not sep or not key or key != key.strip() or _CONTROL.search(key):
        raise AmiError("AMI line is not 'Key: Value': %r" % text[:80])
    if value.startswith(" "):
        value = value[1:]
    return key, value


def encode_action(action):
    """Encode an action dict as bytes: ``Action`` first, then the other headers in order.

    Values must be str or int (bool becomes ``true``/``false``); a list or tuple becomes one
    header per item (``Variable``). Keys must be non-empty without ``:`` or whitespace at the
    ends. CR, LF or NUL in a key or value raise :class:`AmiError` naming the key.
    """
    name = _action_name(action)
    lines = ["Action: %s" % _value("Action", name)]
    for key, value in action.items():
        if key == "Action":
            continue
        _check_key(key)
        items = value if isinstance(value, (list, tuple)) else [value]
        lines.extend("%s: %s" % (key, _value(key, item)) for item in items)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _action_name(action):
    if not isinstance(action, dict) or "Action" not in action:
        raise AmiError("AMI action must be a dict with an 'Action' key, got %r"
                       % (sorted(action) if isinstance(action, dict) else type(action).__name__))
    return action["Action"]


def _check_key(key):
    if not isinstance(key, str) or not key or key != key.strip() or ":" in key:
        raise AmiError("AMI header name %r is invalid: use a non-empty name without ':'" % (key,))
    if any(ch in key for ch in _FORBIDDEN):
        raise AmiError("AMI header name %r contains CR, LF or NUL" % (key,))


def _value(key, value):
    """One header value as text; refuses types and characters that could break framing."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise AmiError("AMI header %s: value must be str or int, got %s"
                       % (key, type(value).__name__))
    if any(ch in value for ch in _FORBIDDEN):
        raise AmiError("AMI header %s: value contains CR, LF or NUL (refused: it would inject "
                       "headers or actions)" % key)
    return value
