"""agi.py: env, reply lines (real Asterisk 22 wording), quoting. Pure: no sockets."""
import pytest

from agi_campaign import agi
from agi_campaign.agi import Reply
from agi_campaign.errors import AgiError, AgiHangup, AgiProtocolError

ENV = [
    "agi_network: yes",
    "agi_network_script: connect?x=1",
    "agi_request: agi://127.0.0.1:4573/connect?x=1",
    "agi_channel: Local/101@agi-campaign-dialout-00000001;1",
    "agi_language: en",
    "agi_type: Local",
    "agi_uniqueid: acamp-101-deadbeef",
    "agi_version: 22.10.1",
    "agi_callerid: 12025550100",
    "agi_calleridname: Clinic",
    "agi_accountcode: ",
    "agi_enhanced: 0.0",
    "agi_arg_1: 101",
    "agi_arg_2: deadbeef",
    "agi_arg_10: ten",
    "agi_arg_9: nine",
]


def test_parse_env_keys_script_and_args():
    env = agi.parse_env(ENV)
    assert env["agi_request"] == "agi://127.0.0.1:4573/connect?x=1"
    assert env["agi_accountcode"] == ""
    assert env.script == "connect"
    assert env.args == ("101", "deadbeef", "nine", "ten")
    assert env.uniqueid == "acamp-101-deadbeef"


def test_parse_env_stops_at_blank_line_and_strips_newlines():
    env = agi.parse_env(["agi_network_script: result\r\n", "\n", "garbage"])
    assert env.script == "result" and env.args == ()


def test_parse_env_without_script_is_empty_script():
    assert agi.parse_env(["agi_channel: SIP/1"]).script == ""


@pytest.mark.parametrize("line", [
    "GET / HTTP/1.1",
    "agi_channel",
    "channel: SIP/1",
    "AGI_CHANNEL: x",
    "agi_arg_x: 1",
    "agi_arg_0: 1",
    " agi_channel: x",
])
def test_parse_env_rejects_garbage(line):
    with pytest.raises(AgiProtocolError):
        agi.parse_env(["agi_network: yes", line])


def test_parse_env_rejects_duplicate_key():
    with pytest.raises(AgiProtocolError, match="repeats"):
        agi.parse_env(["agi_arg_1: a", "agi_arg_1: b"])


def test_parse_env_caps_line_count():
    lines = ["agi_arg_%d: x" % n for n in range(1, agi.MAX_ENV_LINES + 1)]
    assert len(agi.parse_env(lines).args) == agi.MAX_ENV_LINES
    with pytest.raises(AgiProtocolError, match="128"):
        agi.parse_env(lines + ["agi_extra: y"])


@pytest.mark.parametrize("line,reply", [
    ("200 result=0", Reply(200, "0")),
    ("200 result=1", Reply(200, "1")),
    ("200 result=1 (ANSWER)", Reply(200, "1", "ANSWER")),
    ("200 result=1 (ANSWER and more)", Reply(200, "1", "ANSWER and more")),
    ("200 result=1 ()", Reply(200, "1", "")),
    ("200 result=1 (a (nested) value)", Reply(200, "1", "a (nested) value")),
    ("200 result=-1 endpos=1234", Reply(200, "-1", "", 1234)),
    ("200 result=0 endpos=0", Reply(200, "0", "", 0)),
    ("200 result=49 endpos=12345", Reply(200, "49", "", 12345)),
    ("200 result=0 (timeout) endpos=8000", Reply(200, "0", "timeout", 8000)),
    ("200 result= (timeout)", Reply(200, "", "timeout")),
    ("200 result=", Reply(200, "")),
    ("200 result=0123 (timeout)", Reply(200, "0123", "timeout")),
    ("200 result=0 Gosub complete", Reply(200, "0", "Gosub complete")),
    ("200 result=0\r\n", Reply(200, "0")),
    ("100 result=0 Trying...", Reply(100, "0", "Trying...")),
])
def test_parse_reply_table(line, reply):
    assert agi.parse_reply(line) == reply


def test_parse_reply_100_is_not_final():
    assert not agi.parse_reply("100 result=0 Trying...").is_final


@pytest.mark.parametrize("line,error", [
    ("510 Invalid or unknown command", AgiError),
    ("511 Command Not Permitted on a dead channel or intercept routine", AgiHangup),
    ("520 Invalid command syntax.  Proper usage not available.", AgiError),
    ("HANGUP", AgiProtocolError),
    ("", AgiProtocolError),
    ("hello", AgiProtocolError),
    ("200 ok", AgiProtocolError),
    ("200 result=abc", AgiProtocolError),
    ("200-result=0", AgiProtocolError),
    ("404 result=0", AgiProtocolError),
    ("2000 result=0", AgiProtocolError),
])
def test_parse_reply_errors(line, error):
    with pytest.raises(error):
        agi.parse_reply(line)


def test_parse_reply_511_is_also_an_agi_error():
    assert issubclass(AgiHangup, AgiError)


def test_parse_reply_520_dash_starts_usage():
    reply = agi.parse_reply("520-Invalid command syntax.  Proper usage follows:")
    assert reply.code == 520 and not reply.is_final


def feed_all(parser, lines):
    replies = [parser.feed(line) for line in lines]
    return [r for r in replies if r is not None]


def test_reply_parser_hangup_interleaved_before_reply():
    parser = agi.ReplyParser()
    assert feed_all(parser, ["HANGUP", "200 result=1 (NOANSWER)"]) == [Reply(200, "1", "NOANSWER")]
    assert parser.hung_up


def test_reply_parser_skips_trying():
    parser = agi.ReplyParser()
    replies = feed_all(parser, ["100 result=0 Trying...", "200 result=0 Gosub complete"])
    assert replies == [Reply(200, "0", "Gosub complete")]
    assert not parser.hung_up


def test_reply_parser_511_sets_hung_up():
    parser = agi.ReplyParser()
    with pytest.raises(AgiHangup):
        parser.feed("511 Command Not Permitted on a dead channel or intercept routine")
    assert parser.hung_up


def test_reply_parser_520_multi_line_then_usable():
    parser = agi.ReplyParser()
    assert parser.feed("520-Invalid command syntax.  Proper usage follows:") is None
    assert parser.feed(" Usage: STREAM FILE <filename> <escape_digits> [sample offset]") is None
    assert parser.feed("200 this line is usage text, not a reply") is None
    with pytest.raises(AgiError, match="STREAM FILE <filename>"):
        parser.feed("520 End of proper usage.")
    assert parser.feed("200 result=0") == Reply(200, "0")


def test_reply_parser_bounds_usage_text():
    parser = agi.ReplyParser()
    parser.feed("520-Invalid command syntax.  Proper usage follows:")
    with pytest.raises(AgiProtocolError):
        for _ in range(agi.MAX_USAGE_LINES + 1):
            parser.feed("usage")


@pytest.mark.parametrize("arg,quoted", [
    ("hello-world", '"hello-world"'),
    ("", '""'),
    ('say "hi"', r'"say \"hi\""'),
    ("C:\\path", r'"C:\\path"'),
    ("Local/1000@from-internal/n,30,g", '"Local/1000@from-internal/n,30,g"'),
    (5000, '"5000"'),
    ("héllo", '"héllo"'),
])
def test_quote_table(arg, quoted):
    assert agi.quote(arg) == quoted


@pytest.mark.parametrize("arg", ["a\nEXEC Hangup", "a\rb", "a\0b", "\n"])
def test_quote_refuses_line_breaks_and_nul(arg):
    with pytest.raises(AgiError, match="line break"):
        agi.quote(arg)


def test_quote_refuses_other_types():
    with pytest.raises(TypeError):
        agi.quote(None)


def test_format_command():
    assert agi.format_command("STREAM FILE", ["hello-world", "", 0]) == \
        'STREAM FILE "hello-world" "" "0"\n'
    assert agi.format_command("NOOP") == "NOOP\n"
    with pytest.raises(AgiError):
        agi.format_command("NOOP\nHANGUP")


def test_decode_line_replaces_bad_utf8():
    assert agi.decode_line(b"agi_calleridname: Jos\xe9\r\n") == "agi_calleridname: Jos\ufffd"
