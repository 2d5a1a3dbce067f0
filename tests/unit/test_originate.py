import types

from agi_campaign.claim import Claimed
from agi_campaign.originate import (channel_id, originate_action, parse_channel_id, safe_name,
                                 safe_value)

CAMPAIGN = types.SimpleNamespace(dial_timeout_s=25, caller_id='"Clinic" <12025550100>')
SERVER = types.SimpleNamespace(dial_template="PJSIP/{number}@trunk", agi_url="agi://127.0.0.1:4573",
                               dialout_context="agi-campaign-dialout",
                               connect_context="agi-campaign-connect", call_path="local",
                               call_context="agi-campaign-call",
                               hangup_context="agi-campaign-hangup")
DIRECT = types.SimpleNamespace(**dict(vars(SERVER), call_path="direct"))


def claimed(extra=None):
    return Claimed(attempt_id=42, token="0123456789abcdef", number_id=7, phone="+12025550123",
                   extra=extra or {}, seq=1)


def test_dialer_originate_follows_the_dialplan_contract():
    action = originate_action(claimed(), CAMPAIGN, SERVER, campaign_id=3, instance="ab12")
    assert action["Channel"] == "Local/42@agi-campaign-dialout/n"
    assert action["Context"] == "agi-campaign-connect" and action["Exten"] == "s"
    assert action["Async"] == "true"
    assert action["ActionID"] == action["ChannelId"] == "acamp-ab12-42-0123456789abcdef"
    assert action["OtherChannelId"] == "acamp-ab12-42-0123456789abcdef-2"
    assert "ACAMP_KEY=ab12-42" in action["Variable"]
    assert action["Timeout"] == str(35 * 1000)
    assert action["CallerID"] == CAMPAIGN.caller_id
    assert "ACAMP_DIAL=PJSIP/12025550123@trunk" in action["Variable"]
    assert "ACAMP_TIMEOUT=25" in action["Variable"]
    assert "ACAMP_ATTEMPT=42" in action["Variable"]
    assert "ACAMP_CAMPAIGN=3" in action["Variable"]


def test_dialer_direct_originate_rings_the_callee_with_the_hangup_handler():
    action = originate_action(claimed(), CAMPAIGN, DIRECT, campaign_id=3, instance="ab12")
    assert action["Channel"] == "PJSIP/12025550123@trunk"
    assert action["Context"] == "agi-campaign-call" and action["Exten"] == "s"
    assert action["ActionID"] == action["ChannelId"] == "acamp-ab12-42-0123456789abcdef"
    assert "OtherChannelId" not in action  # one channel: the callee's
    assert action["Timeout"] == str(25 * 1000)  # the ring time itself: no Dial() in between
    # escaped commas: AMI splits Variable values on the others
    assert "CHANNEL(hangup_handler_push)=agi-campaign-hangup\\,s\\,1" in action["Variable"]
    assert "ACAMP_KEY=ab12-42" in action["Variable"]
    assert "ACAMP_ATTEMPT=42" in action["Variable"]


def test_dialer_csv_values_cannot_inject():
    hostile = {"name": "Bob,ACAMP_DIAL=SIP/evil", "note": "a\nAction: Originate",
               "x$": "${SHELL(rm -rf /)}", "q": 'say "hi" \\ now; ok'}
    variables = originate_action(claimed(hostile), CAMPAIGN, SERVER, 3, "ab12")["Variable"]
    extras = [v for v in variables if v.startswith("ACAMP_X_")]
    assert len(extras) == 4
    for v in extras:
        name, _, value = v.partition("=")
        assert set(value).isdisjoint(',\n\r"\\$;{}()')
    assert "ACAMP_X_NAME=BobACAMP_DIAL=SIP/evil" not in variables  # '=' is dropped too
    assert [v for v in variables if v.startswith("ACAMP_DIAL=")] == [
        "ACAMP_DIAL=PJSIP/12025550123@trunk"]


def test_dialer_safe_value_keeps_letters_and_cuts_length():
    assert safe_value("Zoë Ünal 10:30") == "Zoë Ünal 10:30"
    assert safe_value("x" * 500) == "x" * 100
    assert safe_name("first name!") == "FIRST_NAME"
    assert safe_name("***") == ""


def test_dialer_channel_id_round_trip():
    cid = channel_id("ab12", 42, "0123456789abcdef")
    assert parse_channel_id(cid, "ab12") == (42, "0123456789abcdef")
    assert parse_channel_id(cid + "-2", "ab12") == (42, "0123456789abcdef")
    assert parse_channel_id(cid) == (42, "0123456789abcdef")  # any deployment
    assert parse_channel_id(cid, "ab13") is None  # another deployment's channel
    assert parse_channel_id("acamp-42-0123456789abcdef", "ab12") is None
    assert parse_channel_id("1700000000.12") is None
    assert parse_channel_id(None) is None


def test_dial_string_fills_both_placeholders_and_parses_only_for_national(monkeypatch):
    from agi_campaign import originate
    assert originate.dial_string("PJSIP/{national}@trunk", "+442079460000") == \
        "PJSIP/02079460000@trunk"
    assert originate.dial_string("SIP/{number}/{national}", "+12025550123") == \
        "SIP/12025550123/2025550123"

    def no_parse(e164):
        raise AssertionError("national_digits called for a template without {national}")
    monkeypatch.setattr(originate, "national_digits", no_parse)
    assert originate.dial_string("PJSIP/{number}@trunk", "+12025550123") == \
        "PJSIP/12025550123@trunk"
    action = originate_action(claimed(), CAMPAIGN, DIRECT, campaign_id=3, instance="ab12")
    assert action["Channel"] == "PJSIP/12025550123@trunk"
    assert "ACAMP_DIAL=PJSIP/12025550123@trunk" in action["Variable"]
