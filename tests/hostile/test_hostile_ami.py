"""Hostile AMI input: the pure parser refuses garbage with AmiError (and stays refused), the
encoder refuses header injection, and the real AmiClient, fed garbage or unexpected replies by
the fake server, either ignores them or drops the connection and logs in again.
"""
import logging
import time

import pytest

from agi_campaign.ami import AmiClient
from agi_campaign.amiproto import AmiParser, encode_action
from agi_campaign.errors import AmiError

from tests.unit.fakeami import FakeAmiServer
from tests.unit.support import wait_until

pytestmark = pytest.mark.timeout(60)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
PARSER_ERRORS = [
    ("no-colon", BANNER + b"garbage line\r\n", "is not 'Key: Value'"),
    ("http-response", b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n<html>\r\n",
     "is not 'Key: Value'"),
    ("empty-key", BANNER + b": value\r\n", "is not 'Key: Value'"),
    ("space-before-key", BANNER + b" Response: Success\r\n", "is not 'Key: Value'"),
    ("control-in-key", BANNER + b"Resp\x1bonse: Success\r\n", "is not 'Key: Value'"),
    ("nul-in-key", BANNER + b"Resp\x00: x\r\n", "is not 'Key: Value'"),
    ("oversized-line", BANNER + b"Message: " + b"x" * 70_000 + b"\r\n", "longer than 65536"),
    ("oversized-unterminated", BANNER + b"Message: " + b"x" * 70_000, "longer than 65536"),
    ("too-many-lines", BANNER + b"Event: X\r\n" + b"Output: y\r\n" * 1001,
     "more than 1000 lines"),
    ("binary", BANNER + bytes(range(1, 256)) + b"\r\n", "is not 'Key: Value'"),
]


@pytest.mark.parametrize("data,reason", [c[1:] for c in PARSER_ERRORS],
                         ids=[c[0] for c in PARSER_ERRORS])
def test_hostile_amiproto_garbage_is_amierror_and_sticky(data, reason):
    parser = AmiParser()
    with pytest.raises(AmiError, match=reason):
        for i in range(0, len(data), 977):             # arbitrary chunking
            parser.feed(data[i:i + 977])
    with pytest.raises(AmiError, match="already failed"):
        parser.feed(b"Response: Success\r\n\r\n")


PARSER_TOLERATED = [
    ("latin1-caller-name", BANNER + b"Event: Newchannel\r\nCallerIDName: Jos\xe9\r\n\r\n",
     "CallerIDName", "Jos\ufffd"),
    ("nul-in-value", BANNER + b"Event: X\r\nData: a\x00b\r\n\r\n", "Data", "a\x00b"),
    ("lf-only", b"Event: X\nK: v\n\n", "K", "v"),
    ("blank-lines-between", BANNER + b"\r\n\r\n\r\nEvent: X\r\nK: v\r\n\r\n", "K", "v"),
    ("colon-in-value", BANNER + b"Event: X\r\nK: a: b: c\r\n\r\n", "K", "a: b: c"),
    ("unexpected-response", BANNER + b"Response: Follows\r\nActionID: nobody\r\n\r\n",
     "ActionID", "nobody"),
]


@pytest.mark.parametrize("data,key,value", [c[1:] for c in PARSER_TOLERATED],
                         ids=[c[0] for c in PARSER_TOLERATED])
def test_hostile_amiproto_odd_but_valid_input_is_parsed(data, key, value):
    messages = [m for m in AmiParser().feed(data) if "Banner" not in m]
    assert len(messages) == 1 and messages[0][key] == value


ENCODE_ERRORS = [
    ("cr-in-value", {"Action": "Originate", "CallerID": "x\rAction: Logoff"}, "CR, LF or NUL"),
    ("lf-in-value", {"Action": "Originate", "Variable": ["A=1", "B=2\nAction: Hangup"]},
     "CR, LF or NUL"),
    ("nul-in-value", {"Action": "Ping", "X": "a\x00"}, "CR, LF or NUL"),
    ("lf-in-action", {"Action": "Ping\r\n\r\nAction: Logoff"}, "CR, LF or NUL"),
    ("lf-in-key", {"Action": "Ping", "X\nY": "1"}, "contains CR, LF or NUL"),
    ("colon-in-key", {"Action": "Ping", "Secret: x\r\nY": "1"}, "is invalid"),
    ("empty-key", {"Action": "Ping", "": "1"}, "is invalid"),
    ("dict-value", {"Action": "Ping", "X": {"a": 1}}, "must be str or int"),
    ("bytes-value", {"Action": "Ping", "X": b"1"}, "must be str or int"),
    ("no-action", {"Channel": "x"}, "must be a dict with an 'Action' key"),
]


@pytest.mark.parametrize("action,reason", [c[1:] for c in ENCODE_ERRORS],
                         ids=[c[0] for c in ENCODE_ERRORS])
def test_hostile_amiproto_encode_refuses_injection(action, reason):
    with pytest.raises(AmiError, match=reason):
        encode_action(action)


# ---- the client against a misbehaving server -------------------------------------------------

SECRET = "s3cr3t-Pa55"


@pytest.fixture
def fake():
    with FakeAmiServer(secret=SECRET) as server:
        yield server


@pytest.fixture
def client(fake):
    cl = AmiClient("main", "127.0.0.1", fake.port, "agi-campaign", SECRET, connect_timeout_s=1,
                   action_timeout_s=1, ping_interval_s=5, backoff_min_s=0.05, backoff_max_s=0.2)
    cl.start()
    assert cl.wait_connected(5)
    yield cl
    cl.stop()


def logins(fake):
    return len(fake.actions_named("Login"))



DROP, KEEP = "reconnects", "keeps the connection"
CLIENT_CASES = [
    ("garbage-line", b"this is not AMI\r\n", DROP),
    ("binary", bytes(range(1, 256)) + b"\r\n\r\n", DROP),
    ("oversized-line", b"Event: X\r\nData: " + b"x" * 70_000 + b"\r\n\r\n", DROP),
    ("too-many-lines", b"Event: X\r\n" + b"Output: y\r\n" * 1001 + b"\r\n", DROP),
    ("http-reply", b"HTTP/1.1 400 Bad Request\r\n\r\n", DROP),
    ("truncated-then-close", b"Response: Succ", "close"),
    ("unknown-actionid", b"Response: Success\r\nActionID: forged-1\r\nMessage: x\r\n\r\n", KEEP),
    ("response-without-actionid", b"Response: Error\r\nMessage: boom\r\n\r\n", KEEP),
    ("message-without-event-or-response", b"Foo: bar\r\n\r\n", KEEP),
    ("unsolicited-list-event", b"Event: CoreShowChannel\r\nActionID: nobody\r\n\r\n", KEEP),
    ("latin1-event", b"Event: Newchannel\r\nCallerIDName: Jos\xe9\r\n\r\n", KEEP),
    ("event-flood", b"".join(b"Event: Junk\r\nSeq: %d\r\n\r\n" % i for i in range(5000)), KEEP),
]


@pytest.mark.parametrize("data,effect", [c[1:] for c in CLIENT_CASES],
                         ids=[c[0] for c in CLIENT_CASES])
def test_hostile_ami_client_survives(fake, client, caplog, data, effect):
    caplog.set_level(logging.DEBUG, logger="agi_campaign.ami")
    before = logins(fake)
    fake.send_raw(data)
    if effect == "close":
        fake.drop_all()
    if effect == KEEP:
        time.sleep(0.3)
        assert logins(fake) == before and client.connected
    else:
        assert wait_until(lambda: logins(fake) > before and client.connected)
        assert "disconnected" in caplog.text
    reply = client.request({"Action": "Ping"}, timeout=2)
    assert reply["Response"] == "Success"
    assert SECRET not in caplog.text


def test_hostile_ami_client_error_reply_to_ping_reconnects(fake, client):
    before = logins(fake)
    future = client.send({"Action": "Fail"})
    with pytest.raises(AmiError, match="failed: boom"):
        future.result(2)
    assert client.connected and logins(fake) == before
    fake.mute_all()                                   # a silent peer: the action times out
    with pytest.raises(AmiError):
        client.request({"Action": "Ping"}, timeout=0.5)
    fake.drop_all()
    assert wait_until(lambda: logins(fake) > before and client.connected)
    assert client.request({"Action": "Ping"}, timeout=2)["Response"] == "Success"
