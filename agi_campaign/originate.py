"""Building the AMI Originate for one claimed attempt (pure: no I/O).

Nothing from a CSV or the config reaches the dial string or a channel variable unchecked:
- the number is E.164 digits only (agi_campaign.phone), put into the server's validated
  dial_template;
- channel variable values must not contain a comma (Asterisk splits `Variable:` on commas), a
  quote, a backslash, `$`, `;` or a control character: CSV values are reduced to letters, digits,
  spaces and `. _ : @ + - /` (anything else dropped) and cut to 100 characters;
- CSV column names become `ACAMP_X_<NAME>` with NAME upper-cased and reduced to [A-Z0-9_].
"""
import re
import unicodedata

from agi_campaign.phone import dial_digits, national_digits

ACTION_PREFIX = "acamp"
ASTDB_FAMILY = "agi-campaign"
EXTRA_PREFIX = "ACAMP_X_"
MAX_EXTRA_VALUE = 100
_NAME_BAD = re.compile(r"[^A-Z0-9_]")
_SAFE_PUNCT = set(" ._:@+-/")


_CHANNEL_ID = re.compile(r"^acamp-([a-z0-9]{1,16})-(\d{1,18})-([0-9a-f]{8,64})(?:-2)?$")


def channel_id(instance, attempt_id, token):
    """The ChannelId (and ActionID) of an attempt's originated channel:
    acamp-<instance>-<id>-<token>. The instance keeps deployments that share an Asterisk (each
    with its own database, so the same attempt ids) apart."""
    return "%s-%s-%d-%s" % (ACTION_PREFIX, instance, attempt_id, token)


def parse_channel_id(value, instance=None):
    """(attempt_id, token) from a channel id or uniqueid set by deployment `instance` (any
    deployment when None), else None."""
    m = _CHANNEL_ID.match(value or "")
    if m is None or (instance is not None and m.group(1) != instance):
        return None
    return int(m.group(2)), m.group(3)


def astdb_key(instance, attempt_id):
    """The AstDB key (family ASTDB_FAMILY) of the result copy the dialplan keeps for recovery."""
    return "%s-%d" % (instance, attempt_id)


def safe_value(value):
    """A CSV value reduced to characters that are safe in a channel variable."""
    out = []
    for ch in str(value):
        cat = unicodedata.category(ch)
        if ch.isalnum() and cat[0] in "LN" or ch in _SAFE_PUNCT:
            out.append(ch)
    return "".join(out).strip()[:MAX_EXTRA_VALUE]


def safe_name(name):
    """A CSV column name as a channel variable suffix ([A-Z0-9_]), or '' if nothing remains."""
    return _NAME_BAD.sub("_", str(name).upper()).strip("_")[:40]


def dial_string(template, phone_e164):
    """`template` (a server's dial_template) with {number} and {national} of `phone_e164`;
    the national form (a phonenumbers parse, the costly part) only when the template has it."""
    national = national_digits(phone_e164) if "{national}" in template else ""
    return template.format(number=dial_digits(phone_e164), national=national)


def originate_action(claimed, campaign, server, campaign_id, instance):
    """The AMI Originate action (a dict of headers; Variable is a list) for `claimed`.

    On the server's `direct` call path the originated channel is the callee's own (Channel: the
    dial string, ringing for dial_timeout_s), answered into `call_context`, with
    `hangup_context` pushed as its hangup handler (the commas escaped: AMI splits `Variable:`
    values on unescaped commas). On the `local` path it is a Local pair whose ";2" half runs
    Dial() in `dialout_context` (ringing for ACAMP_TIMEOUT), answered into `connect_context`.
    dialplan/README.md has the contract of both.
    """
    cid = channel_id(instance, claimed.attempt_id, claimed.token)
    dial = dial_string(server.dial_template, claimed.phone)
    variables = [
        "ACAMP_ATTEMPT=%d" % claimed.attempt_id,
        "ACAMP_TOKEN=%s" % claimed.token,
        "ACAMP_KEY=%s" % astdb_key(instance, claimed.attempt_id),
        "ACAMP_DIAL=%s" % dial,
        "ACAMP_TIMEOUT=%d" % campaign.dial_timeout_s,
        "ACAMP_AGI=%s" % server.agi_url,
        "ACAMP_CAMPAIGN=%d" % campaign_id,
    ]
    for key, value in sorted((claimed.extra or {}).items()):
        name = safe_name(key)
        if name:
            variables.append("%s%s=%s" % (EXTRA_PREFIX, name, safe_value(value)))
    action = {
        "Action": "Originate",
        "ActionID": cid,
        "Exten": "s",
        "Priority": "1",
        "CallerID": campaign.caller_id,
        "Async": "true",
        "ChannelId": cid,
        "Variable": variables,
    }
    if server.call_path == "direct":
        variables.append("CHANNEL(hangup_handler_push)=%s\\,s\\,1" % server.hangup_context)
        action.update(Channel=dial,
                      Context=server.call_context,
                      Timeout=str(campaign.dial_timeout_s * 1000))
    else:
        action.update(Channel="Local/%d@%s/n" % (claimed.attempt_id, server.dialout_context),
                      Context=server.connect_context,
                      Timeout=str((campaign.dial_timeout_s + 10) * 1000),
                      OtherChannelId=cid + "-2")
    return action
