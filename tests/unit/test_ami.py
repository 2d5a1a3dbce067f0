"""AmiClient against the fake AMI server (tests/unit/fakeami.py) on 127.0.0.1.

Every wait is bounded; timeouts and backoffs are small so the file runs in a few seconds.
"""
import concurrent.futures
import logging
import threading
import time

import pytest

from agi_campaign.ami import AmiClient
from agi_campaign.errors import AmiAuthError, AmiError, AmiNotConnected, AmiNotSent, AmiTimeout
from tests.unit.fakeami import FakeAmiServer
from tests.unit.support import wait_until

pytestmark = pytest.mark.timeout(30)

SECRET = "s3cr3t-Pa55"



@pytest.fixture
def server():
    with FakeAmiServer(secret=SECRET) as fake:
        yield fake


def make_client(server, cls=AmiClient, **overrides):
    options = dict(connect_timeout_s=1, action_timeout_s=1, ping_interval_s=5,
                   backoff_min_s=0.05, backoff_max_s=0.2)
    options.update(overrides)
    return cls("main", "127.0.0.1", server.port, "agi-campaign", SECRET, **options)


@pytest.fixture
def start_client(server):
    clients = []

    def start(**overrides):
        client = make_client(server, **overrides)
        clients.append(client)
        client.start()
        return client

    yield start
    for client in clients:
        client.stop()


@pytest.fixture
def client(start_client):
    client = start_client()
    assert client.wait_connected(5)
    return client


class Recorder:
    """A listener that keeps what it is given (thread-safe)."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, item):
        with self.lock:
            self.items.append(item)

    def events(self, name):
        with self.lock:
            return [e for e in self.items if isinstance(e, dict) and e.get("Event") == name]


def test_ami_login_sends_events_on_and_request_works(client, server):
    (login,) = server.actions_named("Login")
    assert login["Events"] == "on" and login["Username"] == "agi-campaign"
    reply = client.request({"Action": "Ping"})
    assert reply["Ping"] == "Pong"
    assert client.banner == "Asterisk Call Manager/11.0.0"


def test_ami_actionid_correlation_concurrent_out_of_order(client):
    def one(n):
        futures = [client.send({"Action": "Echo", "Echo": "%d-%d" % (n, i),
                                "DelayMs": str((n * 7 + i * 13) % 50)}) for i in range(5)]
        return [(f.result(5)["Echo"], "%d-%d" % (n, i)) for i, f in enumerate(futures)]

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        pairs = [p for result in pool.map(one, range(10)) for p in result]
    assert len(pairs) == 50
    assert all(got == sent for got, sent in pairs)


def test_ami_caller_actionid_used_as_is_and_must_be_unique(client, server):
    future = client.send({"Action": "Blackhole", "ActionID": "mine-1"})
    assert future.action_id == "mine-1"
    with pytest.raises(AmiError, match="already pending"):
        client.send({"Action": "Ping", "actionid": "mine-1"})
    reply = client.request({"Action": "Originate", "ActionID": "acamp-7-tok"})
    assert reply["ActionID"] == "acamp-7-tok"


def test_ami_send_does_not_mutate_the_callers_dict(client):
    action = {"Action": "Ping"}
    client.request(action)
    client.request(action)
    assert action == {"Action": "Ping"}


def test_ami_actionids_unique_across_reconnect_and_clients(server, start_client):
    first = start_client()
    assert first.wait_connected(5)
    for _ in range(3):
        first.request({"Action": "Ping"})
    server.drop_all()
    assert wait_until(lambda: len(server.actions_named("Login")) == 2)
    assert first.wait_connected(5)
    second = start_client()
    assert second.wait_connected(5)
    for client in (first, second):
        for _ in range(3):
            client.request({"Action": "Ping"})
    ids = [a["ActionID"] for a in server.actions_named("Ping")]
    assert len(ids) == 9 and len(set(ids)) == 9


def test_ami_response_error_raises_amierror(client):
    with pytest.raises(AmiError, match="Fail actionid=.* failed: boom"):
        client.request({"Action": "Fail"})
    future = client.send({"Action": "Fail"})
    assert isinstance(future.exception(5), AmiError)


def test_ami_action_timeout_raises_amitimeout_and_stays_connected(client):
    with pytest.raises(AmiTimeout, match="no reply to Blackhole"):
        client.request({"Action": "Blackhole"}, timeout=0.2)
    assert client.connected
    assert client.request({"Action": "Ping"})["Response"] == "Success"


def test_ami_send_future_expires_after_action_timeout(start_client):
    client = start_client(action_timeout_s=0.3)
    assert client.wait_connected(5)
    future = client.send({"Action": "Blackhole"})
    assert isinstance(future.exception(5), AmiTimeout)


def test_ami_pending_fails_when_connection_drops(client, server):
    future = client.send({"Action": "Blackhole"})
    server.drop_all()
    error = future.exception(5)
    assert isinstance(error, AmiNotConnected)
    assert "may or may not" in str(error)


def test_ami_send_while_disconnected_fails_fast(server):
    client = make_client(server)
    future = client.send({"Action": "Ping"})
    assert isinstance(future.exception(0), AmiNotConnected)
    with pytest.raises(AmiNotConnected):
        client.request({"Action": "Ping"})
    with pytest.raises(AmiError, match="CR, LF or NUL"):
        client.send({"Action": "Ping", "X": "a\r\nAction: Logoff"})


def test_ami_raising_listener_does_not_stop_dispatch(client, server, caplog):
    seen = Recorder()

    def bad(event):
        if event.get("Event") == "Boom":
            raise RuntimeError("listener bug")

    client.add_listener(bad)
    client.add_listener(seen)
    for name in ("Boom", "After1", "Boom", "After2"):
        server.broadcast({"Event": name})
    assert wait_until(lambda: seen.events("After2"))
    assert [e["Event"] for e in seen.items if e["Event"] in ("Boom", "After1", "After2")] == [
        "Boom", "After1", "Boom", "After2"]
    assert "failed on Boom" in caplog.text


def test_ami_originate_response_reaches_listeners(client):
    seen = Recorder()
    client.add_listener(seen)
    reply = client.request({"Action": "Originate", "Channel": "Local/7@agi-campaign-dialout/n",
                            "Async": True})
    assert reply["Message"] == "Originate successfully queued"
    assert wait_until(lambda: seen.events("OriginateResponse"))
    (event,) = seen.events("OriginateResponse")
    assert event["ActionID"] == reply["ActionID"]


def test_ami_collect_gathers_list_events(client, server):
    seen = Recorder()
    client.add_listener(seen)
    events = client.collect({"Action": "CoreShowChannels"}, "CoreShowChannelsComplete")
    assert [e["Channel"] for e in events] == server.channels
    assert all(e["Event"] == "CoreShowChannel" for e in events)
    client.request({"Action": "Ping"})
    time.sleep(0.05)
    assert not seen.events("CoreShowChannel") and not seen.events("CoreShowChannelsComplete")


def test_ami_collect_error_and_timeout(client):
    with pytest.raises(AmiError, match="boom"):
        client.collect({"Action": "Fail"}, "FailComplete")
    with pytest.raises(AmiTimeout):
        client.collect({"Action": "Blackhole"}, "BlackholeComplete", timeout=0.2)


def test_ami_ping_failure_reconnects(server, start_client):
    states = Recorder()
    client = start_client(ping_interval_s=0.2, action_timeout_s=0.3)
    client.add_state_listener(states)
    assert client.wait_connected(5)
    server.mute_all()
    assert wait_until(lambda: False in states.items)
    assert wait_until(lambda: states.items.count(True) >= 1 and states.items[-1] is True)
    assert client.wait_connected(5)
    assert len(server.actions_named("Login")) == 2
    assert client.request({"Action": "Ping"})["Response"] == "Success"


def test_ami_server_drop_reconnects_with_backoff(server, start_client):
    states = Recorder()
    client = start_client()
    client.add_state_listener(states)
    assert client.wait_connected(5)
    for round_ in range(3):
        server.drop_all()
        assert wait_until(lambda: len(server.actions_named("Login")) == round_ + 2)
        assert client.wait_connected(5)
        assert client.request({"Action": "Ping"})["Response"] == "Success"
    assert wait_until(lambda: states.items.count(False) == 3)
    assert states.items == [True, False, True, False, True, False, True]


def test_ami_backoff_grows_and_stays_in_bounds(server):
    client = make_client(server, backoff_min_s=0.5, backoff_max_s=4)
    delays = [client._backoff(n) for n in range(10) for _ in range(20)]
    assert all(0.5 <= d <= 4 for d in delays)
    assert max(client._backoff(0) for _ in range(20)) <= 0.5
    assert min(client._backoff(9) for _ in range(20)) >= 2


def test_ami_login_refused_retries_and_reports(server, start_client, caplog):
    server.refuse_login = True
    client = start_client()
    assert wait_until(lambda: len(server.actions_named("Login")) >= 3)
    assert not client.connected
    assert not client.wait_connected(0.1)
    assert isinstance(client.last_error, AmiAuthError)
    assert "refused the login" in caplog.text and "Authentication failed" in caplog.text
    server.refuse_login = False
    assert client.wait_connected(5)
    assert client.last_error is None


@pytest.mark.parametrize("garbage", [
    b"x" * (70 * 1024),
    b"\x00\xff\xfe this is not AMI\r\n\r\n",
    b"Event: X\r\n" + b"K: v\r\n" * 1001 + b"\r\n",
])
def test_ami_garbage_drops_and_reconnects(server, start_client, garbage):
    client = start_client()
    assert client.wait_connected(5)
    server.send_raw(garbage)
    assert wait_until(lambda: len(server.actions_named("Login")) == 2)
    assert client.wait_connected(5)
    assert client.request({"Action": "Ping"})["Response"] == "Success"


def test_ami_secret_never_logged_nor_in_repr(server, start_client, caplog):
    caplog.set_level(logging.DEBUG)
    server.refuse_login = True
    client = start_client()
    assert wait_until(lambda: len(server.actions_named("Login")) >= 2)
    server.refuse_login = False
    assert client.wait_connected(5)
    server.drop_all()
    assert wait_until(lambda: len(server.actions_named("Login")) >= 3)
    assert client.wait_connected(5)
    client.stop()
    assert SECRET not in caplog.text
    assert SECRET not in repr(client) and "secret='***'" in repr(client)
    assert SECRET not in str(client.last_error)
    assert all(SECRET not in str(r.args) for r in caplog.records)


class CountingSocket:
    """Wraps a socket; keeps the size asked of each recv call in `recvs`, and what each
    sendall call wrote in `writes`."""

    def __init__(self, sock, recvs=None, writes=None):
        self._sock = sock
        self._recvs = [] if recvs is None else recvs
        self._writes = [] if writes is None else writes

    def recv(self, size):
        self._recvs.append(size)
        return self._sock.recv(size)

    def sendall(self, data):
        self._writes.append(data)
        return self._sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_ami_reads_are_buffered(server):
    recvs = []

    class CountingClient(AmiClient):
        def _open_socket(self):
            return CountingSocket(super()._open_socket(), recvs)

    client = make_client(server, cls=CountingClient)
    seen = Recorder()
    client.add_listener(seen)
    client.start()
    try:
        assert client.wait_connected(5)
        client.request({"Action": "Flood", "Count": 2000})
        assert wait_until(lambda: len(seen.events("TestEvent")) == 2000, timeout=10)
        assert [int(e["Seq"]) for e in seen.events("TestEvent")] == list(range(2000))
        assert all(size == 64 * 1024 for size in recvs)
        assert len(recvs) < 200
    finally:
        client.stop()


def test_ami_stop_logs_off_and_joins_threads(server):
    states = Recorder()
    client = make_client(server)
    client.add_state_listener(states)
    client.start()
    assert client.wait_connected(5)
    client.stop()
    assert server.actions_named("Logoff")
    assert not client.connected
    assert states.items == [True, False]
    alive = [t.name for t in threading.enumerate() if t.name.startswith("ami-main-")]
    assert alive == []
    assert len(server.actions_named("Login")) == 1


def test_ami_stop_while_server_down_is_bounded():
    with FakeAmiServer() as fake:
        port = fake.port
    client = AmiClient("down", "127.0.0.1", port, "u", SECRET, connect_timeout_s=0.5,
                       backoff_min_s=0.05, backoff_max_s=0.1)
    client.start()
    assert not client.wait_connected(0.3)
    client.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("ami-down-")]


def test_ami_send_many_writes_a_batch_at_once_and_resolves_each(server):
    writes = []

    class Client(AmiClient):
        def _open_socket(self):
            return CountingSocket(super()._open_socket(), writes=writes)

    client = make_client(server, cls=Client)
    client.start()
    try:
        assert client.wait_connected(5)
        before = len(writes)
        actions = [{"Action": "Echo", "Echo": "e-%d" % i, "DelayMs": str((i * 7) % 20)}
                   for i in range(20)]
        futures = client.send_many(actions)
        assert [f.result(5)["Echo"] for f in futures] == ["e-%d" % i for i in range(20)]
        assert len(writes) == before + 1  # one system call for the 20 actions
        assert writes[before].count(b"Action: Echo\r\n") == 20
        assert [a["Echo"] for a in server.actions_named("Echo")] == [
            "e-%d" % i for i in range(20)]
    finally:
        client.stop()


def test_ami_send_many_refuses_a_bad_batch_whole_and_sends_none_of_it(client, server):
    with pytest.raises(AmiError, match="CR, LF or NUL"):
        client.send_many([{"Action": "Echo", "Echo": "one"},
                          {"Action": "Echo", "Echo": "two\r\nAction: Logoff"}])
    with pytest.raises(AmiError, match="already pending"):
        client.send_many([{"Action": "Echo", "Echo": "a", "ActionID": "same"},
                          {"Action": "Echo", "Echo": "b", "ActionID": "same"}])
    blocked = client.send({"Action": "Blackhole", "ActionID": "held"})
    with pytest.raises(AmiError, match="already pending"):
        client.send_many([{"Action": "Echo", "Echo": "c"},
                          {"Action": "Echo", "Echo": "d", "ActionID": "held"}])
    assert client.send_many([{"Action": "Echo", "Echo": "e"}])[0].result(5)["Echo"] == "e"
    assert [a["Echo"] for a in server.actions_named("Echo")] == ["e"]
    assert not server.actions_named("Logoff") and not blocked.done()


def test_ami_send_many_while_disconnected_sends_nothing(server):
    client = make_client(server)
    futures = client.send_many([{"Action": "Ping"}, {"Action": "Ping"}])
    assert all(isinstance(f.exception(0), AmiNotSent) for f in futures)
    assert len({f.action_id for f in futures}) == 2


def test_ami_lost_state_is_queued_before_the_supervisor_can_reconnect(server):
    """The "disconnected" state is queued before the connection is marked closed (which wakes
    the supervisor to reconnect): a loaded process once dispatched the next session's first
    events ahead of it (tests/unit/test_channel_monitor.py saw a resync stamped wrong)."""
    seen = []

    class Client(AmiClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            put = self._events.put

            def recording_put(item):
                if item == ("state", False):
                    conn = self._last_conn
                    seen.append(conn.closed.is_set())
                put(item)
            self._events.put = recording_put

    client = make_client(server, cls=Client)
    client.start()
    try:
        assert client.wait_connected(5)
        server.drop_all()
        assert wait_until(lambda: seen, timeout=10)
        assert seen == [False]
        assert wait_until(lambda: client.connected, timeout=10)
    finally:
        client.stop()
