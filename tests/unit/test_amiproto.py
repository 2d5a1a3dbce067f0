"""Tables for the pure AMI parser and encoder (agi_campaign.amiproto)."""
import pytest

from agi_campaign.amiproto import MAX_LINE_BYTES, MAX_MESSAGE_LINES, AmiParser, encode_action
from agi_campaign.errors import AmiError

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
LOGIN_OK = b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
FULLY_BOOTED = (b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 5\r\n"
                b"LastReload: 5\r\nStatus: Fully Booted\r\n\r\n")
ORIGINATE_QUEUED = (b"Response: Success\r\nActionID: acamp-42-t0k\r\n"
                    b"Message: Originate successfully queued\r\n\r\n")
ORIGINATE_RESPONSE = (b"Event: OriginateResponse\r\nPrivilege: call,all\r\n"
                      b"ActionID: acamp-42-t0k\r\nResponse: Failure\r\n"
                      b"Channel: Local/42@agi-campaign-dialout/n\r\n"
                      b"Context: agi-campaign-connect\r\n"
                      b"Exten: s\r\nApplication: \r\nData: \r\nReason: 0\r\n"
                      b"Uniqueid: acamp-42-t0k\r\nCallerIDNum: <unknown>\r\n"
                      b"CallerIDName: <unknown>\r\n\r\n")
COMMAND_OUTPUT = (b"Response: Success\r\nActionID: c-1\r\nMessage: Command output follows\r\n"
                  b"Output: Channel              Location\r\nOutput:   0 active channels\r\n"
                  b"Output: \r\n\r\n")
CHANVARS = (b"Event: Hangup\r\nChannel: PJSIP/a-1\r\nChanVariable: ACAMP_ATTEMPT=7\r\n"
            b"ChanVariable: ACAMP_TOKEN=abc\r\nCause: 16\r\nCause-txt: Normal Clearing\r\n\r\n")
LOGIN_ERROR = b"Response: Error\r\nMessage: Authentication failed\r\n\r\n"
STREAM = BANNER + LOGIN_OK + FULLY_BOOTED + ORIGINATE_QUEUED + ORIGINATE_RESPONSE


def parse(data, expect_banner=True):
    return AmiParser(expect_banner=expect_banner).feed(data)


@pytest.mark.parametrize("data, expected", [
    (BANNER, [{"Banner": "Asterisk Call Manager/11.0.0"}]),
    (LOGIN_OK, [{"Response": "Success", "Message": "Authentication accepted"}]),
    (LOGIN_ERROR, [{"Response": "Error", "Message": "Authentication failed"}]),
    (ORIGINATE_QUEUED, [{"Response": "Success", "ActionID": "acamp-42-t0k",
                         "Message": "Originate successfully queued"}]),
    (FULLY_BOOTED, [{"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "5",
                     "LastReload": "5", "Status": "Fully Booted"}]),
    (b"Event: X\r\nEmpty:\r\nSpaced:   padded  \r\n\r\n",
     [{"Event": "X", "Empty": "", "Spaced": "  padded  "}]),
    (b"Event: X\r\nUrl: http://h:80/p\r\n\r\n", [{"Event": "X", "Url": "http://h:80/p"}]),
    (b"\r\n\r\nEvent: X\r\n\r\n\r\n", [{"Event": "X"}]),
    (b"Event: X\r\nCallerIDName: Andr\xe9\r\n\r\n", [{"Event": "X", "CallerIDName": "Andr\ufffd"}]),
    (b"Event: X\r\nPartial: yes\r\n", []),
])
def test_amiproto_parses_real_lines(data, expected):
    assert parse(data, expect_banner=False if data != BANNER else True) == expected


def test_amiproto_banner_then_messages():
    messages = parse(STREAM)
    assert [m.get("Banner") or m.get("Event") or m.get("Response") for m in messages] == [
        "Asterisk Call Manager/11.0.0", "Success", "FullyBooted", "Success",
        "OriginateResponse"]
    assert messages[4]["ActionID"] == "acamp-42-t0k"
    assert messages[4]["Application"] == ""


def test_amiproto_first_line_with_colon_is_not_a_banner():
    assert parse(LOGIN_OK) == [{"Response": "Success", "Message": "Authentication accepted"}]


def test_amiproto_lf_only_equals_crlf():
    assert parse(STREAM.replace(b"\r\n", b"\n")) == parse(STREAM)


def test_amiproto_split_at_every_byte():
    expected = parse(STREAM)
    for cut in range(len(STREAM) + 1):
        parser = AmiParser()
        got = parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:])
        assert got == expected, cut


def test_amiproto_one_byte_per_feed():
    parser = AmiParser()
    got = []
    for i in range(len(STREAM)):
        got += parser.feed(STREAM[i:i + 1])
    assert got == parse(STREAM)


def test_amiproto_output_lines_are_all_kept():
    (message,) = parse(COMMAND_OUTPUT, expect_banner=False)
    assert message["Output"] == "Channel              Location"
    assert message.getall("Output") == ["Channel              Location",
                                        "  0 active channels", ""]
    assert message.getall("Message") == ["Command output follows"]
    assert message.getall("Missing") == []


def test_amiproto_chanvariable_lines_are_all_kept():
    (message,) = parse(CHANVARS, expect_banner=False)
    assert message["ChanVariable"] == "ACAMP_ATTEMPT=7"
    assert message.getall("ChanVariable") == ["ACAMP_ATTEMPT=7", "ACAMP_TOKEN=abc"]
    # Read as a plain dict (as event listeners do): every header once, with its first value.
    assert dict(message) == {"Event": "Hangup", "Channel": "PJSIP/a-1",
                             "ChanVariable": "ACAMP_ATTEMPT=7", "Cause": "16",
                             "Cause-txt": "Normal Clearing"}


def test_amiproto_oversize_line_refused_even_without_newline():
    parser = AmiParser(expect_banner=False)
    parser.feed(b"Event: X\r\nBig: ")
    with pytest.raises(AmiError, match="longer than"):
        parser.feed(b"a" * MAX_LINE_BYTES)


def test_amiproto_line_at_the_limit_accepted():
    value = b"v" * (MAX_LINE_BYTES - len(b"Big: ") - 1)
    (message,) = parse(b"Big: " + value + b"\r\n\r\n", expect_banner=False)
    assert len(message["Big"]) == len(value)


def test_amiproto_too_many_lines_refused():
    data = b"Event: X\r\n" + b"K: v\r\n" * MAX_MESSAGE_LINES
    with pytest.raises(AmiError, match="more than 1000 lines"):
        parse(data, expect_banner=False)


@pytest.mark.parametrize("garbage", [
    b"Event: X\r\nthis is not a header\r\n\r\n",
    b"\x00\xff\xfe binary junk\r\n\r\n",
    b"Event: X\r\n: no key\r\n\r\n",
    b"Event: X\r\n Key: leading space\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>\r\n\r\n",
])
def test_amiproto_garbage_refused(garbage):
    with pytest.raises(AmiError):
        parse(garbage, expect_banner=False)


def test_amiproto_parser_stays_broken_after_error():
    parser = AmiParser(expect_banner=False)
    with pytest.raises(AmiError):
        parser.feed(b"junk\r\n")
    with pytest.raises(AmiError, match="already failed"):
        parser.feed(LOGIN_OK)


@pytest.mark.parametrize("action, expected", [
    ({"Action": "Ping"}, b"Action: Ping\r\n\r\n"),
    ({"ActionID": "x-1", "Action": "Ping"}, b"Action: Ping\r\nActionID: x-1\r\n\r\n"),
    ({"Action": "Originate", "Timeout": 40000, "Async": True,
      "Variable": ["ACAMP_ATTEMPT=7", "ACAMP_TOKEN=abc"]},
     b"Action: Originate\r\nTimeout: 40000\r\nAsync: true\r\n"
     b"Variable: ACAMP_ATTEMPT=7\r\nVariable: ACAMP_TOKEN=abc\r\n\r\n"),
    ({"Action": "Originate", "Variable": ()}, b"Action: Originate\r\n\r\n"),
    ({"Action": "Login", "Events": False}, b"Action: Login\r\nEvents: false\r\n\r\n"),
    ({"Action": "Originate", "CallerID": '"Caf\u00e9" <1202>'},
     'Action: Originate\r\nCallerID: "Caf\u00e9" <1202>\r\n\r\n'.encode()),
])
def test_amiproto_encode(action, expected):
    assert encode_action(action) == expected


def test_amiproto_encode_roundtrips_through_parser():
    action = {"Action": "Originate", "ActionID": "a-1", "Variable": ["A=1", "B=2"]}
    (message,) = parse(encode_action(action), expect_banner=False)
    assert message.getall("Variable") == ["A=1", "B=2"]
    assert message["ActionID"] == "a-1"


@pytest.mark.parametrize("action, named", [
    ({"Action": "Originate", "CallerID": "x\r\nAction: Command"}, "CallerID"),
    ({"Action": "Originate", "Variable": ["A=1", "B=2\n\r\nAction: Logoff"]}, "Variable"),
    ({"Action": "Originate", "Exten": "s\x00"}, "Exten"),
    ({"Action": "Ping\r\n\r\nAction: Logoff"}, "Action"),
    ({"Action": "Ping", "X\r\nY": "1"}, "X"),
    ({"Action": "Ping", "A: B": "1"}, "A: B"),
    ({"Action": "Ping", "": "1"}, "''"),
    ({"Action": "Ping", "Timeout": 1.5}, "Timeout"),
    ({"Action": "Ping", "Data": None}, "Data"),
    ({"Action": "Ping", "Variable": [["nested"]]}, "Variable"),
])
def test_amiproto_encode_refuses_injection_and_bad_types(action, named):
    with pytest.raises(AmiError) as info:
        encode_action(action)
    assert named in str(info.value)


@pytest.mark.parametrize("action", [{}, {"Channel": "x"}, "Action: Ping", None])
def test_amiproto_encode_requires_action(action):
    with pytest.raises(AmiError, match="Action"):
        encode_action(action)
