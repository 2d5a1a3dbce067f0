"""The real FastAGI server on an ephemeral port, driven by a fake Asterisk over a real socket.

Every socket has a timeout and every loop is bounded: a hung server fails the test, not CI.
"""
import errno
import logging
import queue
import socket
import struct
import threading
import time

import pytest

from agi_campaign.errors import AgiError, AgiHangup, AgiProtocolError, StartupError
from agi_campaign.fastagi import FastAgiServer

from tests.unit.fakeagi import TIMEOUT_S, FakeAsterisk
from tests.unit.support import FastAgiServers



def recording(body):
    """A handler running body(channel) and putting ('ok', value) or ('error', exc) on a queue."""
    results = queue.Queue()

    def handler(channel):
        try:
            results.put(("ok", body(channel)))
        except Exception as exc:
            results.put(("error", exc))
            raise

    return handler, results


@pytest.fixture
def make_server():
    servers = FastAgiServers(env_timeout_s=2)
    yield servers
    servers.stop_all()


def session(server, body, fake_side, **env):
    """Run one connection: body(channel) in the server, fake_side(fake) here; body's outcome."""
    server.handler, results = recording(body)
    fake = FakeAsterisk(server.address)
    try:
        fake.send_env(**env)
        fake_side(fake)
        return results.get(timeout=TIMEOUT_S)
    finally:
        fake.close()


def noop_handler(channel):
    return None


def test_fastagi_full_session_speaks_exact_lines(make_server):
    server = make_server(noop_handler)

    def body(channel):
        channel.answer()
        digit = channel.stream_file("hello-world")
        dial = channel.appexec("Dial", "Local/1000@from-internal/n,30,g")
        status = channel.get_variable("DIALSTATUS")
        channel.verbose('done "ok"', 3)
        channel.hangup()
        return (channel.script, channel.args, channel.peer, channel.env["agi_uniqueid"],
                digit, dial, status, channel.hung_up)

    def fake_side(fake):
        fake.expect("ANSWER", "200 result=0")
        fake.expect('STREAM FILE "hello-world" "" "0"', "200 result=49 endpos=12345")
        fake.expect('EXEC "Dial" "Local/1000@from-internal/n,30,g"', "200 result=0")
        fake.expect('GET VARIABLE "DIALSTATUS"', "200 result=1 (ANSWER)")
        fake.expect(r'VERBOSE "done \"ok\"" "3"', "200 result=1")
        fake.expect("HANGUP", "200 result=1")
        assert fake.closed_by_server()

    kind, value = session(server, body, fake_side, args=("101", "deadbeef", "x"))
    assert kind == "ok"
    assert value == ("connect", ("101", "deadbeef", "x"), "127.0.0.1", "1700000000.1",
                     "1", "0", "ANSWER", False)


def test_fastagi_hangup_before_reply_is_a_flag(make_server):
    server = make_server(noop_handler)

    def body(channel):
        result = channel.appexec("Dial", "Local/1000@from-internal/n,30")
        return result, channel.hung_up, channel.get_variable("DIALSTATUS")

    def fake_side(fake):
        fake.expect('EXEC "Dial" "Local/1000@from-internal/n,30"', "HANGUP", "200 result=-1")
        fake.expect('GET VARIABLE "DIALSTATUS"', "200 result=1 (NOANSWER)")

    assert session(server, body, fake_side) == ("ok", ("-1", True, "NOANSWER"))


@pytest.mark.parametrize("sound, noop_reply, error", [
    ("hello-world", ("HANGUP", "200 result=0"), AgiHangup),  # the channel is gone
    ("no-such-sound", ("200 result=0",), AgiError),           # it is up: the file is missing
], ids=["then-hangup-raises-agihangup", "on-live-channel-is-agierror"])
def test_fastagi_stream_file_minus_one(make_server, sound, noop_reply, error):
    """STREAM FILE's -1 is a hangup or a failure to play: a NOOP probe tells which."""
    server = make_server(noop_handler)

    def fake_side(fake):
        fake.expect('STREAM FILE "%s" "" "0"' % sound, "200 result=-1 endpos=0")
        fake.expect("NOOP", *noop_reply)

    kind, exc = session(server, lambda channel: channel.stream_file(sound), fake_side)
    assert kind == "error" and type(exc) is error
    assert error is AgiHangup or "STREAM FILE" in str(exc)


def _peer_closes(fake):
    fake.sock.shutdown(socket.SHUT_WR)


def _peer_resets(fake):
    fake.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    fake.sock.close()  # RST, not FIN


@pytest.mark.parametrize("body, command, leave", [
    (lambda channel: channel.answer(), "ANSWER", _peer_closes),
    (lambda channel: channel.get_variable("X"), 'GET VARIABLE "X"', _peer_resets),
], ids=["eof", "connection-reset"])
def test_fastagi_peer_gone_after_command_is_hangup(make_server, body, command, leave):
    server = make_server(noop_handler)

    def fake_side(fake):
        assert fake.read_line() == command
        leave(fake)

    kind, exc = session(server, body, fake_side)
    assert kind == "error" and isinstance(exc, AgiHangup)


def test_fastagi_511_is_hangup_and_later_dead_safe_command_works(make_server):
    server = make_server(noop_handler)

    def body(channel):
        with pytest.raises(AgiHangup):
            channel.answer()
        return channel.hung_up, channel.get_variable("X")

    def fake_side(fake):
        fake.expect("ANSWER", "511 Command Not Permitted on a dead channel or intercept routine")
        fake.expect('GET VARIABLE "X"', "200 result=0")

    assert session(server, body, fake_side) == ("ok", (True, ""))


def test_fastagi_trying_510_and_520_usage(make_server):
    server = make_server(noop_handler)

    def body(channel):
        gosub = channel.execute("GOSUB", "sub", "s", 1)
        with pytest.raises(AgiError, match="FOO"):
            channel.execute("FOO")
        with pytest.raises(AgiError, match="Usage: STREAM FILE"):
            channel.execute("STREAM FILE")
        return gosub["result"]

    def fake_side(fake):
        fake.expect('GOSUB "sub" "s" "1"', "100 result=0 Trying...",
                    "200 result=0 Gosub complete")
        fake.expect("FOO", "510 Invalid or unknown command")
        fake.expect("STREAM FILE", "520-Invalid command syntax.  Proper usage follows:",
                    " Usage: STREAM FILE <filename> <escape_digits> [sample offset]",
                    "520 End of proper usage.")

    assert session(server, body, fake_side) == ("ok", ("0", "Gosub complete"))


def test_fastagi_newline_in_argument_is_refused_and_nothing_sent(make_server):
    server = make_server(noop_handler)

    def body(channel):
        with pytest.raises(AgiError, match="line break"):
            channel.verbose('hi"\nEXEC Hangup')
        channel.noop()
        return "sent noop only"

    def fake_side(fake):
        fake.expect("NOOP", "200 result=0")

    assert session(server, body, fake_side) == ("ok", "sent noop only")


def test_fastagi_oversized_reply_line_is_protocol_error(make_server):
    server = make_server(noop_handler, max_line_bytes=256)

    def body(channel):
        channel.get_variable("BIG")

    def fake_side(fake):
        fake.expect('GET VARIABLE "BIG"', "200 result=1 (%s)" % ("x" * 1000))

    kind, exc = session(server, body, fake_side)
    assert kind == "error" and isinstance(exc, AgiProtocolError)


def test_fastagi_eof_mid_env_does_not_call_handler(make_server, caplog):
    handler, results = recording(noop_handler)
    server = make_server(handler)
    fake = FakeAsterisk(server.address)
    fake.send("agi_network: yes", "agi_network_script: conn")
    fake.sock.shutdown(socket.SHUT_WR)
    assert fake.closed_by_server()
    fake.close()
    _wait_idle(server)
    assert results.empty()
    assert "closed after 2 AGI environment lines" in caplog.text
    _assert_serves(server, results)


def test_fastagi_garbage_env_is_closed(make_server, caplog):
    handler, results = recording(noop_handler)
    server = make_server(handler)
    fake = FakeAsterisk(server.address)
    fake.send("GET / HTTP/1.1", "Host: x", "")
    assert fake.closed_by_server()
    fake.close()
    assert results.empty()
    assert "not 'agi_<name>: <value>'" in caplog.text
    _assert_serves(server, results)


def test_fastagi_oversized_env_line_is_closed(make_server, caplog):
    handler, results = recording(noop_handler)
    server = make_server(handler, max_line_bytes=256)
    fake = FakeAsterisk(server.address)
    fake.send("agi_callerid: " + "9" * 5000)
    assert fake.closed_by_server()
    fake.close()
    assert results.empty()
    assert "longer than max_line_bytes=256" in caplog.text


def test_fastagi_env_deadline(make_server, caplog):
    handler, results = recording(noop_handler)
    server = make_server(handler, env_timeout_s=0.3)
    fake = FakeAsterisk(server.address)
    started = time.monotonic()
    for _ in range(3):  # a trickling peer: each line well within a per-recv timeout
        fake.send("agi_network: yes")
        time.sleep(0.15)
    assert fake.closed_by_server()
    assert time.monotonic() - started < 2
    fake.close()
    assert results.empty()
    assert "not complete within 0.3 s" in caplog.text


def test_fastagi_allowlist_refuses_other_peers(make_server, caplog):
    handler, results = recording(noop_handler)
    server = make_server(handler, allow=("10.9.9.9",))
    fake = FakeAsterisk(server.address)
    assert fake.closed_by_server()
    fake.close()
    assert results.empty()
    assert "refused peer=127.0.0.1: not in fastagi.allow" in caplog.text


def test_fastagi_allowlist_accepts_listed_network(make_server):
    handler, results = recording(noop_handler)
    server = make_server(handler, allow=("10.9.9.9", "127.0.0.0/8"))
    _assert_serves(server, results)


def test_fastagi_allowlist_bad_entry_is_startup_error():
    with pytest.raises(StartupError, match="fastagi.allow entry 'localhost'"):
        FastAgiServer("127.0.0.1", 0, noop_handler, allow=("localhost",))


def test_fastagi_max_connections(make_server, caplog):
    release = threading.Event()
    entered = threading.Event()

    def body(channel):
        entered.set()
        assert release.wait(TIMEOUT_S)

    handler, results = recording(body)
    server = make_server(handler, max_connections=1)
    first = FakeAsterisk(server.address)
    first.send_env()
    assert entered.wait(TIMEOUT_S)
    second = FakeAsterisk(server.address)
    assert second.closed_by_server()
    second.close()
    assert "1 connections open (fastagi.max_connections)" in caplog.text
    release.set()
    assert results.get(timeout=TIMEOUT_S) == ("ok", None)
    assert first.closed_by_server()
    first.close()
    _wait_idle(server)
    entered.clear()
    release.set()
    _assert_serves(server, results)


def test_fastagi_raising_handler_does_not_stop_server(make_server, caplog):
    calls = []

    def body(channel):
        calls.append(channel.uniqueid)
        if len(calls) == 1:
            raise RuntimeError("boom")

    handler, results = recording(body)
    server = make_server(handler)
    fake = FakeAsterisk(server.address)
    fake.send_env(uniqueid="u-1")
    assert fake.closed_by_server()
    fake.close()
    kind, exc = results.get(timeout=TIMEOUT_S)
    assert kind == "error" and str(exc) == "boom"
    _assert_serves(server, results)
    crash = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert crash and "script=connect uniqueid=u-1 peer=127.0.0.1" in crash[0].getMessage()


def test_fastagi_port_taken_is_startup_error():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        server = FastAgiServer("127.0.0.1", port, noop_handler)
        with pytest.raises(StartupError) as info:
            server.start()
    finally:
        holder.close()
    assert str(info.value) == (
        "FastAGI cannot listen on 127.0.0.1:%d: address already in use; "
        "stop the other process or set fastagi.port" % port)
    assert info.value.__cause__.errno == errno.EADDRINUSE


def test_fastagi_address_and_stop(make_server):
    server = make_server(noop_handler)
    host, port = server.address
    assert host == "127.0.0.1" and port > 0
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1).recv(1)


def test_fastagi_threads_take_their_own_connections_and_end_at_stop(make_server):
    """Each session runs on the thread that accepted it; threads are reused, at most the cap
    + 1 of them exist, and stop() ends the idle ones waiting in accept()."""
    release, seen = threading.Event(), queue.Queue()

    def body(channel):
        seen.put(threading.current_thread().name)
        assert release.wait(TIMEOUT_S)

    handler, results = recording(body)
    server = make_server(handler, max_connections=3)
    port = server.address[1]

    def ours():
        return [t for t in threading.enumerate() if t.name.startswith("fastagi-%d-" % port)]

    fakes = [FakeAsterisk(server.address) for _ in range(3)]
    for fake in fakes:
        fake.send_env()
    names = {seen.get(timeout=TIMEOUT_S) for _ in fakes}
    assert len(names) == 3  # three sessions at once, three threads
    refused = FakeAsterisk(server.address)  # the cap's extra thread takes it, only to refuse
    assert refused.closed_by_server()
    refused.close()
    assert len(ours()) <= 4
    release.set()
    for fake in fakes:
        assert fake.closed_by_server()
        fake.close()
    for _ in fakes:
        assert results.get(timeout=TIMEOUT_S) == ("ok", None)
    _wait_idle(server)
    before = {t.name for t in ours()}
    again = FakeAsterisk(server.address)
    again.send_env()
    assert seen.get(timeout=TIMEOUT_S) in before  # an idle thread took it: none started
    assert again.closed_by_server()
    again.close()
    assert {t.name for t in ours()} == before
    server.stop()
    deadline = time.monotonic() + TIMEOUT_S
    while ours() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ours() == []


def _assert_serves(server, results):
    """A fresh connection gets its handler called: the server is still alive."""
    fake = FakeAsterisk(server.address)
    fake.send_env(uniqueid="u-check")
    assert fake.closed_by_server()
    fake.close()
    assert results.get(timeout=TIMEOUT_S)[0] == "ok"


def _wait_idle(server):
    deadline = time.monotonic() + TIMEOUT_S
    while server.active_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.active_connections == 0
