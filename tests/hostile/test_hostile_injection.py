"""No value from a CSV or the config reaches a dial string, a channel variable or an AGI command
unvalidated: property-style loops over hostile strings."""
import dataclasses
import itertools
import re

import pytest

from agi_campaign import agi, phone
from agi_campaign.amiproto import encode_action
from agi_campaign.claim import Claimed
from agi_campaign.config import CampaignConfig, OnConnect, ServerConfig
from agi_campaign.originate import originate_action
from agi_campaign.errors import AgiError, PhoneError

HOSTILE = [
    "", " ", "a,b", "x\r\nAction: Hangup", "\n", "\r", "\x00", "${SHELL}", "$[1+1]", "a;b",
    '"quoted"', "'single'", "back\\slash", "=HYPERLINK(\"http://e\",\"x\")", "+cmd|' /C calc'!A0",
    "@SUM(1)", "-2+3", "Local/1@evil&SIP/x", "PJSIP/x,30,D(1)", "\t\t", "\u2028\u2029", "\x85",
    "\u202e" + "evil", "\u0661\u0662\u0663", "\uff11\uff12", "\u00e9t\u00e9", "\U0001f4a9",
    "a" * 5000, ",,,,", "k=v", "\x1b[31m", "%s%n", "../../etc/passwd", "(), {}, []",
    "Variable: X=1", "\x7f", "\u200b", "1,2\r\n3",
]
PHONE_INPUTS = HOSTILE + ["2025550123", "+1 (202) 555-0123", "00 1 202 555 0123",
                          "2025550123&SIP/evil", "2025550123,30,D"]

SERVER = ServerConfig(name="main", ami_host="127.0.0.1", ami_port=5038, ami_username="u",
                      ami_secret="s", dial_template="PJSIP/{number}@trunk",
                      agi_url="agi://127.0.0.1:4573", dialout_context="agi-campaign-dialout",
                      connect_context="agi-campaign-connect")
LOCAL = dataclasses.replace(SERVER, call_path="local")
CAMPAIGN = CampaignConfig(
    name="c1", caller_id='"Clinic" <12025550100>', type="on_demand", start=None, end=None,
    week_time=None, week_time_text=None, timezone="UTC", region="US", dnc_lists=(),
    dial_timeout_s=30, on_connect=OnConnect(type="message", sounds=("hello-world",)),
    max_channels=1, max_attempts=1, delay_ms=0, retry_delay_s=0, server="main")
SAFE_VALUE = re.compile(r"[^\x00-\x1f\x7f-\x9f,;\"'\\$\u2028\u2029]*")


def test_hostile_injection_phone_normalize_gives_digits_or_refuses():
    accepted = 0
    for raw in PHONE_INPUTS:
        try:
            e164 = phone.normalize(raw, "US")
        except PhoneError:
            continue
        accepted += 1
        assert re.fullmatch(r"\+[0-9]{8,15}", e164), (raw, e164)
    assert accepted == 3


@pytest.mark.parametrize("chunk", range(4))
def test_hostile_injection_originate_variables_and_dial_string(chunk):
    pairs = list(itertools.product(HOSTILE, HOSTILE))[chunk::4]
    for i, (key, value) in enumerate(pairs):
        claimed = Claimed(attempt_id=1000 + i, token="0123456789abcdef", number_id=1,
                          phone="+12025550123", extra={key: value, "note": value, key[:3]: key},
                          seq=1)
        assert originate_action(claimed, CAMPAIGN, LOCAL, 5, "ab12")["Channel"] == (
            "Local/%d@agi-campaign-dialout/n" % (1000 + i))
        action = originate_action(claimed, CAMPAIGN, SERVER, 5, "ab12")
        assert action["Channel"] == "PJSIP/12025550123@trunk"
        variables = [v for v in action["Variable"] if not v.startswith("CHANNEL(")]
        assert len(variables) == len(action["Variable"]) - 1  # our own hangup handler
        assert "ACAMP_DIAL=PJSIP/12025550123@trunk" in variables
        for var in variables:
            name, _, val = var.partition("=")
            assert re.fullmatch(r"ACAMP_[A-Z0-9_]+", name), var
            assert SAFE_VALUE.fullmatch(val), (key, value, var)
            assert "," not in var and "\r" not in var and "\n" not in var
            assert len(val) <= 100 or name in ("ACAMP_DIAL", "ACAMP_AGI")
        encode_action(action)                           # the AMI encoder accepts all of it


def test_hostile_injection_dial_template_gets_digits_only():
    from agi_campaign.originate import dial_string
    for template in ("PJSIP/{number}@trunk", "SIP/{national}@gw", "IAX2/{number}"):
        for e164 in ("+12025550123", "+442079460000", "+390612345678"):
            out = dial_string(template, e164)
            head, tail = template.split("{")[0], template.split("}")[1]
            digits = out[len(head):len(out) - len(tail)]
            assert out.startswith(head) and out.endswith(tail) and digits.isdigit(), out


def _asterisk_parse_args(line):
    """Asterisk's res_agi parse_args(): whitespace separates, quotes group, backslash escapes."""
    args, cur, quoted, escaped, started = [], [], False, False, False
    for ch in line:
        if escaped:
            cur.append(ch)
            escaped = False
            started = True
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
            started = True
        elif ch in " \t" and not quoted:
            if started:
                args.append("".join(cur))
            cur, started = [], False
        else:
            cur.append(ch)
            started = True
    if started:
        args.append("".join(cur))
    return args


def test_hostile_injection_agi_quote_is_one_argument_or_refused():
    refused = 0
    for text in HOSTILE:
        try:
            line = agi.format_command("STREAM FILE", [text, ""])
        except AgiError as err:
            refused += 1
            assert "line break or NUL" in str(err)
            assert any(ch in text for ch in "\r\n\x00")
            continue
        assert line.endswith("\n") and line.count("\n") == 1, line
        assert _asterisk_parse_args(line[:-1]) == ["STREAM", "FILE", text, ""], text
    assert refused >= 5


@pytest.mark.parametrize("command", ["STREAM FILE\nEXEC", "EXEC System", "GET VARIABLE;", ""])
def test_hostile_injection_agi_command_name_checked(command):
    if command == "EXEC System":
        assert agi.format_command(command, ["x"]) == 'EXEC System "x"\n'
        return
    with pytest.raises(AgiError, match="must be words of letters"):
        agi.format_command(command)
