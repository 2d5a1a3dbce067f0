"""systemd's notify protocol (agi_campaign.systemd) on a real AF_UNIX datagram socket, as
systemd listens: READY=1, WATCHDOG=1 only while the check holds, STOPPING=1 once."""
import os
import secrets
import socket

import pytest

from agi_campaign import systemd


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    """(NOTIFY_SOCKET value, bound datagram socket) for a file path or an abstract '@' name."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify.sock")
        sock.bind(name)
    else:
        name = "@acamp-test-" + secrets.token_hex(6)
        sock.bind("\0" + name[1:])
    sock.settimeout(5)
    yield name, sock
    sock.close()


def received(sock, timeout=5):
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def test_systemd_notifier_sends_ready_and_stopping_once(listener):
    name, sock = listener
    notifier = systemd.Notifier.from_environ({"NOTIFY_SOCKET": name})
    assert notifier.ready()
    assert received(sock) == "READY=1"
    assert notifier.stopping()
    assert received(sock) == "STOPPING=1"
    assert not notifier.stopping()
    with pytest.raises(socket.timeout):
        received(sock, timeout=0.3)


def test_systemd_without_notify_socket_does_nothing():
    notifier = systemd.Notifier.from_environ({})
    assert not notifier.enabled and not notifier.ready() and not notifier.stopping()
    assert systemd.start_watchdog(notifier, lambda: True, {"WATCHDOG_USEC": "1000000"}) is None


def test_systemd_notify_socket_gone_is_logged_not_raised(tmp_path, caplog):
    notifier = systemd.Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "none.sock")})
    assert not notifier.ready()
    assert not notifier.send("WATCHDOG=1")
    assert sum("systemd notify" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("env,interval", [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "0"}, None), ({"WATCHDOG_USEC": "x"}, None), ({}, None)])
def test_systemd_watchdog_interval_is_half_of_watchdog_usec(env, interval):
    assert systemd.watchdog_interval_s(env) == interval


def test_systemd_watchdog_pings_only_while_the_check_holds(listener):
    name, sock = listener
    well = [True]
    notifier = systemd.Notifier.from_environ({"NOTIFY_SOCKET": name})
    dog = systemd.start_watchdog(notifier, lambda: well[0], {"WATCHDOG_USEC": "100000"})
    try:
        assert dog.interval_s == 0.05
        assert received(sock) == "WATCHDOG=1"
        well[0] = False
        sock.settimeout(0.5)
        try:  # drain a ping that was on its way when the check turned false
            for _ in range(2):
                sock.recv(4096)
        except socket.timeout:
            pass
        with pytest.raises(socket.timeout):  # 20 intervals without a ping
            received(sock, timeout=1.0)
        well[0] = True
        assert received(sock) == "WATCHDOG=1"
    finally:
        dog.stop()
