"""Hostile FastAGI peers against the real FastAgiServer on an ephemeral port.

Every hostile connection is closed cleanly by the server (EOF or reset, within the environment
deadline), the handler never sees a connection whose environment is malformed, a handler that
gets an unexpected reply fails with a typed error, and the server still serves the next good
connection. Forged or unknown attempt ids and tokens go through the real Router with a fake
recorder: nothing is recorded and no AGI command is sent.
"""
import logging
import queue
import socket
import threading
import time

import pytest

from agi_campaign.errors import AgiHangup, AgiProtocolError, NotFoundError
from agi_campaign.routes import Router

from tests.unit.fakeagi import TIMEOUT_S, FakeAsterisk
from tests.unit.support import FastAgiServers

pytestmark = pytest.mark.timeout(60)

ENV_TIMEOUT_S = 1
MAX_LINE = 512


def env_bytes(script="probe", args=(), extra=()):
    lines = ["agi_network: yes", "agi_network_script: %s" % script,
             "agi_request: agi://127.0.0.1/%s" % script, "agi_uniqueid: 1700000000.%d" % len(args)]
    lines += ["agi_arg_%d: %s" % (i, a) for i, a in enumerate(args, start=1)]
    lines += list(extra)
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class Probe:
    """The server's handler: `probe` asks GET VARIABLE PROBE; everything else is recorded."""

    def __init__(self):
        self.seen = queue.Queue()

    def __call__(self, channel):
        if channel.script != "probe":
            self.seen.put(("other", dict(channel.env)))
            return
        try:
            self.seen.put(("probe", channel.get_variable("PROBE")))
        except Exception as exc:
            self.seen.put(("error", exc))
            raise


@pytest.fixture
def make_server():
    servers = FastAgiServers(max_line_bytes=MAX_LINE, env_timeout_s=ENV_TIMEOUT_S,
                             max_connections=16)
    yield servers
    servers.stop_all()


def good_connection_works(server, probe, deadline_s=TIMEOUT_S):
    """A well-formed session gets served (retried while refused by the connection cap)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        peer = FakeAsterisk(server.address)
        try:
            peer.send_raw(env_bytes())
            line = peer.read_line()
            if line is None:
                time.sleep(0.05)
                continue
            assert line == 'GET VARIABLE "PROBE"'
            peer.send_raw(b"200 result=1 (alive)\n")
            kind, value = probe.seen.get(timeout=TIMEOUT_S)
            assert (kind, value) == ("probe", "alive")
            return True
        except ConnectionResetError:
            time.sleep(0.05)
        finally:
            peer.close()
    return False


def wait_idle(server, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while server.active_connections and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.active_connections == 0


# ---- malformed environments -----------------------------------------------------------------

KEEP, EOF = "keep-open", "eof"
ENV_CASES = [
    ("http-request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", EOF, "is not 'agi_<name>: <value>'"),
    ("tls-client-hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(200))
     + b"\n", KEEP, "is not 'agi_<name>: <value>'"),
    ("random-binary", bytes((i * 7919) % 256 for i in range(300)) + b"\n", KEEP,
     "is not 'agi_|line longer"),
    ("smtp-banner", b"EHLO evil.example\r\n", KEEP, "is not 'agi_<name>: <value>'"),
    ("truncated-env-then-eof", b"agi_network: yes\nagi_network_script: probe\n", EOF,
     "connection closed after 2 AGI environment lines"),
    ("partial-line-then-eof", b"agi_netw", EOF, "connection closed after 0"),
    ("env-never-finished", b"agi_network: yes\nagi_network_script: probe\n", KEEP,
     "not complete within 1 s (2 lines read)"),
    ("nothing-sent", b"", KEEP, "not complete within 1 s (0 lines read)"),
    ("cr-only-line-ends", b"agi_network: yes\ragi_network_script: probe\r\r", KEEP,
     "not complete within"),
    ("oversized-line-no-newline", b"agi_x: " + b"a" * 2000, KEEP, "line longer than "
                                                                  "max_line_bytes=512"),
    ("oversized-line", b"agi_x: " + b"a" * 2000 + b"\n\n", KEEP, "max_line_bytes=512"),
    ("line-exactly-too-long", b"agi_x: " + b"a" * (MAX_LINE - 7) + b"\n\n", KEEP,
     "max_line_bytes=512"),
    ("nul-in-key", b"agi_net\x00work: yes\n\n", KEEP, "is not 'agi_<name>: <value>'"),
    ("nul-flood", b"\x00" * 400 + b"\n\n", KEEP, "is not 'agi_<name>: <value>'"),
    ("non-utf8-key", b"agi_\xff\xfe: x\n\n", KEEP, "is not 'agi_<name>: <value>'"),
    ("no-agi-prefix", b"network: yes\n\n", KEEP, "is not 'agi_<name>: <value>'"),
    ("too-many-lines", b"".join(b"agi_v%d: x\n" % i for i in range(200)) + b"\n", KEEP,
     "longer than 128 lines"),
    ("duplicate-key", b"agi_network: yes\nagi_network: no\n\n", KEEP, "repeats key"),
    ("arg-zero", b"agi_network: yes\nagi_arg_0: x\n\n", KEEP, "agi_arg_<1..9999>"),
    ("arg-huge-index", b"agi_arg_99999: x\n\n", KEEP, "agi_arg_<1..9999>"),
]


@pytest.mark.parametrize("data,after,reason", [c[1:] for c in ENV_CASES],
                         ids=[c[0] for c in ENV_CASES])
def test_hostile_fastagi_env_closed_cleanly(make_server, caplog, data, after, reason):
    caplog.set_level(logging.WARNING, logger="agi_campaign.fastagi")
    probe = Probe()
    server = make_server(probe)
    peer = FakeAsterisk(server.address)
    started = time.monotonic()
    try:
        if data:
            peer.send_raw(data)
        if after == EOF:
            peer.sock.shutdown(socket.SHUT_WR)
        assert peer.closed_by_server()
    finally:
        peer.close()
    elapsed = time.monotonic() - started
    assert elapsed < ENV_TIMEOUT_S + 2
    if "not complete" not in reason:
        assert elapsed < ENV_TIMEOUT_S * 0.9     # a bad line closes at once, not at the deadline
    assert wait_idle(server)
    assert probe.seen.empty()                         # the handler never ran
    assert any(p in caplog.text for p in reason.split("|")), caplog.text
    assert "FastAGI closed peer=127.0.0.1" in caplog.text
    assert good_connection_works(server, probe)


def test_hostile_fastagi_trickling_peer_hits_the_deadline(make_server):
    probe = Probe()
    server = make_server(probe)
    peer = FakeAsterisk(server.address)
    started = time.monotonic()
    closed = False
    try:
        for byte in env_bytes()[:-2]:                  # never the final blank line
            try:
                peer.send_raw(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > ENV_TIMEOUT_S + 2:
                break
        closed = closed or peer.closed_by_server()
    finally:
        peer.close()
    assert closed and time.monotonic() - started < ENV_TIMEOUT_S + 2.5
    assert probe.seen.empty() and good_connection_works(server, probe)


def test_hostile_fastagi_immediate_close_and_half_open(make_server):
    probe = Probe()
    server = make_server(probe)
    for _ in range(20):
        socket.create_connection(server.address, timeout=TIMEOUT_S).close()
    assert wait_idle(server) and probe.seen.empty()
    assert good_connection_works(server, probe)


# ---- unexpected replies after a good environment --------------------------------------------

REPLY_CASES = [
    ("garbage", b"hello there\n", AgiProtocolError),
    ("no-result", b"200 noresult\n", AgiProtocolError),
    ("unknown-code", b"999 result=1\n", AgiProtocolError),
    ("oversized", b"200 result=1 (" + b"x" * 4000 + b")\n", AgiProtocolError),
    ("hangup-flood", b"HANGUP\n" * 1100, AgiProtocolError),
    ("usage-flood", b"520-Invalid\n" + b"usage line\n" * 300, AgiProtocolError),
    ("eof", b"", AgiHangup),
    ("http-response", b"HTTP/1.1 400 Bad Request\r\n\r\n", AgiProtocolError),
    ("nul-reply", b"\x00\x00\x00\n", AgiProtocolError),
    ("dead-channel", b"511 Command Not Permitted on a dead channel\n", AgiHangup),
]


@pytest.mark.parametrize("reply,error", [c[1:] for c in REPLY_CASES],
                         ids=[c[0] for c in REPLY_CASES])
def test_hostile_fastagi_unexpected_reply_is_typed_error(make_server, reply, error):
    probe = Probe()
    server = make_server(probe, max_line_bytes=1024)
    peer = FakeAsterisk(server.address)
    try:
        peer.send_raw(env_bytes())
        assert peer.read_line() == 'GET VARIABLE "PROBE"'
        if reply:
            peer.send_raw(reply)
        else:
            peer.sock.shutdown(socket.SHUT_WR)
        kind, exc = probe.seen.get(timeout=TIMEOUT_S)
        assert kind == "error" and isinstance(exc, error), (kind, exc)
        assert peer.closed_by_server()
    finally:
        peer.close()
    assert wait_idle(server) and good_connection_works(server, probe)


# ---- a flood of connections -----------------------------------------------------------------

def test_hostile_fastagi_flood_of_200_connections_then_good_one(make_server, caplog):
    caplog.set_level(logging.WARNING, logger="agi_campaign.fastagi")
    probe = Probe()
    server = make_server(probe, max_connections=4)
    peak, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], server.active_connections)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    socks = []
    try:
        for _ in range(200):
            try:
                socks.append(socket.create_connection(server.address, timeout=TIMEOUT_S))
            except OSError:
                pass                                  # a full backlog may refuse: that is fine
        for sock in socks:
            try:
                sock.sendall(b"agi_network: yes\n")     # never finished
            except OSError:
                pass
        assert good_connection_works(server, probe, deadline_s=ENV_TIMEOUT_S + 5)
    finally:
        stop.set()
        watcher.join(2)
        for sock in socks:
            sock.close()
    assert peak[0] <= 4
    assert "4 connections open (fastagi.max_connections)" in caplog.text
    assert wait_idle(server)
    assert probe.seen.empty()


# ---- forged and unknown attempts through the Router ------------------------------------------

KNOWN_ID, KNOWN_TOKEN = 7, "0123456789abcdef"


class FakeRecorder:
    """Knows one attempt; every other id/token raises NotFoundError, as Recorder does."""

    def __init__(self):
        self.calls, self.writes = [], []

    def _check(self, name, attempt_id, token):
        self.calls.append((name, attempt_id, token))
        if (attempt_id, token) != (KNOWN_ID, KNOWN_TOKEN):
            raise NotFoundError("attempt %s: unknown id or wrong token" % attempt_id)

    def lookup(self, attempt_id, token):
        self._check("lookup", attempt_id, token)
        return "c1"

    def record_answer(self, attempt_id, token, now):
        self._check("record_answer", attempt_id, token)
        self.writes.append("answer")

    def record_destination(self, attempt_id, token, dest_result, now):
        self._check("record_destination", attempt_id, token)
        self.writes.append("destination")

    def record_result(self, attempt_id, token, *rest):
        self._check("record_result", attempt_id, token)
        self.writes.append("result")


class _Clock:
    def now(self):
        import datetime as dt
        return dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


ROUTER_CASES = [
    # (id, script, args, recorder method expected to be asked (None: refused before))
    ("unknown-script", "evil", ("7", KNOWN_TOKEN), None),
    ("uppercase-script", "RESULT", ("7", KNOWN_TOKEN), None),
    ("traversal-script", "result/../connect", ("7", KNOWN_TOKEN), None),
    ("nul-script", "res\x00ult", ("7", KNOWN_TOKEN), None),
    ("empty-script", "", ("7", KNOWN_TOKEN), None),
    ("connect-unknown-id", "connect", ("999999", KNOWN_TOKEN), "lookup"),
    ("connect-forged-token", "connect", ("7", "fedcba9876543210"), "lookup"),
    ("result-unknown-id", "result", ("999999", KNOWN_TOKEN, "ANSWER", "16", "5", "9"),
     "record_result"),
    ("result-forged-token", "result", ("7", "0123456789abcdee", "ANSWER", "16"),
     "record_result"),
    ("result-no-args", "result", (), None),
    ("negative-id", "result", ("-1", KNOWN_TOKEN), None),
    ("hex-id", "connect", ("0x7", KNOWN_TOKEN), None),
    ("exponent-id", "connect", ("7e0", KNOWN_TOKEN), None),
    ("unicode-digit-id", "connect", ("\u0667", KNOWN_TOKEN), None),
    ("huge-id", "result", ("9" * 19, KNOWN_TOKEN), None),
    ("sql-in-id", "result", ("7; DROP TABLE attempt", KNOWN_TOKEN), None),
    ("uppercase-token", "connect", ("7", KNOWN_TOKEN.upper()), None),
    ("traversal-token", "connect", ("7", "../../etc/passwd"), None),
    ("short-token", "connect", ("7", "abc"), None),
    ("long-token", "connect", ("7", "a" * 65), None),
    ("quoted-token", "connect", ("7", '"%s"' % KNOWN_TOKEN), None),
]


@pytest.mark.parametrize("script,args,asked", [c[1:] for c in ROUTER_CASES],
                         ids=[c[0] for c in ROUTER_CASES])
def test_hostile_fastagi_forged_attempts_record_nothing(make_server, script, args, asked):
    recorder = FakeRecorder()
    router = Router(lambda name: None, recorder, _Clock(), "ab12")
    done = queue.Queue()

    def handler(channel):
        try:
            router(channel)
        finally:
            done.put(True)

    server = make_server(handler)
    peer = FakeAsterisk(server.address)
    try:
        peer.send_raw(env_bytes(script, args))
        assert peer.closed_by_server()                 # no AGI command was sent
        done.get(timeout=TIMEOUT_S)
    finally:
        peer.close()
    assert recorder.writes == []
    assert [c[0] for c in recorder.calls] == ([asked] if asked else [])
