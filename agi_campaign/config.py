"""The YAML configuration: read once, validated once, returned as frozen dataclasses.

Every problem reads "{key.path} {problem}; {fix}". One ConfigError reports every independent
problem of the file at once ("{source}: {problem}", or "{source}: N problems:" then one indented
line each); a file that is not YAML or not a mapping of sections stops at the first. A part with
a problem is not checked further where that would only repeat it (a campaign's server reference
when servers: is unusable). Unknown keys are errors at every level; booleans are not integers;
names used across sections (servers, DNC lists) must be defined. The YAML is read by
agi_campaign.yamlsafe (aliases bounded, duplicate keys refused, before anything is constructed).

Field tables (`_F`) hold each key's check and default; small functions do the cross-field rules.
Mappings in Config are plain dicts (the contract in DESIGN.md); treat them as read-only.

Secrets (the AMI secret, the database password, a campaign's webhook secret) never appear in a message, a log, a repr or
check-config output: database.url is parsed and shown through agi_campaign.dburl (strict
parsing, `mask_url`), and the AMI and webhook secrets are never formatted into a message.
"""
import dataclasses
import datetime as _dt
import difflib
import base64
import binascii
import ipaddress
import json
import os
import re
import urllib.parse
import zoneinfo
from typing import Any, Callable, NamedTuple

import phonenumbers

from agi_campaign import phone, yamlsafe
from agi_campaign.dburl import (POSTGRES_SCHEMES, POSTGRES_URL_HINT, mask_url,
                                parse_postgres_url, with_password)
from agi_campaign.errors import ConfigError, PhoneError, WeekTimeError
from agi_campaign.weektime import WeekTime, parse_week_time

DIAL_PLACEHOLDERS = ("number", "national")
CALL_PATHS = ("direct", "local")  # dialplan/README.md, "Two call paths"


@dataclasses.dataclass(frozen=True)
class DatabaseConfig:
    url: str                          # holds the password (from password_env too): use mask_url
    password_env: str | None = None

    def __repr__(self):
        return "DatabaseConfig(url=%r, password_env=%r)" % (mask_url(self.url), self.password_env)


@dataclasses.dataclass(frozen=True)
class FastAgiConfig:
    host: str
    port: int
    allow: tuple
    max_connections: int
    max_line_bytes: int


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    tick_ms: int
    stop_deadline_s: int
    stuck_after_s: int
    instance: str = None
    callee_hours: str | None = None   # week-time text: the default of campaigns that set none


@dataclasses.dataclass(frozen=True)
class HttpConfig:
    """``http:``: the service's HTTP API, dashboard, metrics and health checks (agi_campaign.api);
    off when the section is absent. ``token`` (from the ``token_env`` variable) is the bearer
    token every endpoint but the health checks asks for; None when loaded without secrets."""
    host: str
    port: int
    token_env: str
    max_upload_bytes: int
    token: str | None = None

    def __repr__(self):
        return ("HttpConfig(host=%r, port=%r, token_env=%r, max_upload_bytes=%r, token=%s)"
                % (self.host, self.port, self.token_env, self.max_upload_bytes,
                   "'***'" if self.token else None))


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    name: str
    ami_host: str
    ami_port: int
    ami_username: str
    ami_secret: str
    dial_template: str
    agi_url: str
    dialout_context: str
    connect_context: str
    ami_secret_env: str | None = None  # the variable ami_secret came from; None: from the file
    max_channels: int | None = None    # calls in flight on this server, all campaigns and nodes
    max_cps: float | None = None       # calls started per second on this server (evenly spaced)
    call_path: str = "direct"          # direct: originate the callee's channel; local: a Local pair
    call_context: str = "agi-campaign-call"        # direct path: where the answered callee goes
    hangup_context: str = "agi-campaign-hangup"    # direct path: the callee channel's handler

    def __repr__(self):
        shown = ("%s=%r" % (f.name, "***" if f.name == "ami_secret" else getattr(self, f.name))
                 for f in dataclasses.fields(self))
        return "ServerConfig(%s)" % ", ".join(shown)


@dataclasses.dataclass(frozen=True)
class DncListConfig:
    name: str
    description: str


@dataclasses.dataclass(frozen=True)
class OptOut:
    """``opt_out:`` of a message: the key that puts the callee's number on ``dnc_list`` while
    the message plays; ``confirm_sounds`` are played after the number is listed."""
    digit: str
    dnc_list: str
    confirm_sounds: tuple = ()


@dataclasses.dataclass(frozen=True)
class Collect:
    """``collect:`` of a message: after it, play ``sounds`` and read up to ``max_digits`` keys,
    ``timeout_s`` after the last sound (or key) ending the input."""
    max_digits: int
    timeout_s: int
    sounds: tuple


@dataclasses.dataclass(frozen=True)
class OnConnect:
    type: str
    sounds: tuple | None = None
    repeat: int | None = None
    extension: str | None = None
    context: str | None = None
    queue: str | None = None
    room: str | None = None
    timeout_s: int | None = None
    opt_out: OptOut | None = None
    collect: Collect | None = None


@dataclasses.dataclass(frozen=True)
class RetryRule:
    """What an outcome does to its number: pending again after ``delay_s``, or failed once
    the number had ``max`` attempts with this outcome (None: only max_attempts caps it)."""
    outcome: str
    delay_s: int
    max: int | None


@dataclasses.dataclass(frozen=True)
class AmdConfig:
    """Answering-machine detection (Asterisk's AMD() on the answered call): what to do when it
    says MACHINE. ``hangup``: end the call, outcome ``machine``; ``message``: wait for the
    silence after the beep, play ``sounds``; ``continue``: go on as with a person."""
    action: str
    sounds: tuple = ()


AMD_ACTIONS = ("hangup", "message", "continue")


@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    """``webhook:`` of a campaign: where its events are POSTed (agi_campaign.webhooks).
    ``secret`` (the ``whsec_...`` text from ``secret_env``) is None when loaded without
    need_secrets; never shown."""
    url: str
    secret_env: str
    events: tuple = ("attempt", "state")
    timeout_s: int = 10
    min_backoff_s: int = 5
    max_backoff_s: int = 300
    give_up_after_h: int = 72
    secret: str | None = None

    def __repr__(self):
        shown = ("%s=%r" % (f.name, "***" if f.name == "secret" and self.secret is not None
                            else getattr(self, f.name)) for f in dataclasses.fields(self))
        return "WebhookConfig(%s)" % ", ".join(shown)


WEBHOOK_EVENTS = ("attempt", "state")

RETRY_OUTCOMES = ("busy", "noanswer", "congestion", "unavailable", "failed", "cancelled", "lost",
                  "machine")


@dataclasses.dataclass(frozen=True)
class CampaignConfig:
    name: str
    caller_id: str
    type: str
    start: _dt.datetime | None
    end: _dt.datetime | None
    week_time: WeekTime | None
    week_time_text: str | None
    timezone: str
    region: str
    dnc_lists: tuple
    dial_timeout_s: int
    on_connect: OnConnect
    max_channels: int
    max_attempts: int
    delay_ms: int
    retry_delay_s: int
    server: str
    countries: tuple = ()             # allowed regions of numbers (US, CA...); () = every country
    retry: tuple = ()                 # RetryRule per outcome with a rule of its own
    caller_id_internal: bool = False  # caller_id may be an internal extension, not a number
    callee_hours: WeekTime | None = None   # in each number's own zones; None: any time
    callee_hours_text: str | None = None   # its text (the campaign's, or service.callee_hours)
    amd: AmdConfig | None = None      # answering-machine detection; None: not run
    webhook: WebhookConfig | None = None  # per-call webhooks; None: none


@dataclasses.dataclass(frozen=True)
class Config:
    path: str
    database: DatabaseConfig
    fastagi: FastAgiConfig
    service: ServiceConfig
    servers: dict
    dnc_lists: dict
    campaigns: dict
    http: HttpConfig | None = None    # None: no HTTP server


class _Invalid(Exception):
    """One validation problem; the text lacks only the "{source}: " prefix."""


def _fail(text):
    raise _Invalid(text)


class _Problems:
    """The problems found so far, so that one load reports them all.

    A part that has a problem is recorded here and built as None; the caller goes on with the
    independent checks, skips those that need that part, and parse_config raises once at the
    end, so a None never leaves this module.
    """

    def __init__(self):
        self.texts = []

    def __len__(self):
        return len(self.texts)

    def add(self, text):
        self.texts.append(str(text))

    def check(self, check, *args):
        """check(*args), or None once the problem it raised is recorded."""
        try:
            return check(*args)
        except _Invalid as err:
            self.add(err)
            return None


# --- loading -----------------------------------------------------------------------------------

def load_config(path, need_secrets=True) -> Config:
    """Read, parse and validate the YAML file at `path`; raise ConfigError naming every problem.

    need_secrets=False (commands that never talk to Asterisk): a server whose secret_env variable
    is unset loads with ami_secret None (see missing_secrets) instead of being an error.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            raw = handle.read(yamlsafe.MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError("%s: cannot read the configuration file: %s; check the path"
                          % (source, err.strerror or err)) from None
    try:
        data = yamlsafe.load_yaml(yamlsafe.decode(raw))
    except yamlsafe.YamlError as err:
        raise ConfigError("%s: %s" % (source, err)) from None
    return parse_config(data, source, os.path.dirname(os.path.abspath(source)), need_secrets)


# --- generic checks ----------------------------------------------------------------------------

class _F(NamedTuple):
    """A key's check (None: the caller checks it) and default (_REQUIRED: must be given)."""

    check: Callable[[Any, str], Any] | None
    default: Any = None
    example: str = ""


_REQUIRED = object()
_ABSENT = object()      # a section not in the file (unlike null: present, empty)


def _show(value):
    if isinstance(value, bool):
        return "%s (a boolean)" % ("true" if value else "false")
    if value is None:
        return "nothing (null)"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = value.isoformat() if isinstance(value, _dt.date) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _join(path, key):
    return "%s.%s" % (path, key) if path else str(key)


def _at(path):
    return "%s: " % path if path else ""


def _integer(low, high):
    def check(value, path):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            _fail("%s must be an integer %d..%d, got %s" % (path, low, high, _show(value)))
        return value
    return check


def _text(pattern, describe):
    regex = re.compile(pattern)

    def check(value, path):
        if not isinstance(value, str) or not regex.fullmatch(value):
            number = isinstance(value, int) and not isinstance(value, bool)
            hint = " (write numbers in quotes)" if number else ""
            _fail("%s must be %s, got %s%s" % (path, describe, _show(value), hint))
        return value
    return check


def _choice(*options):
    def check(value, path):
        if not isinstance(value, str) or value not in options:
            _fail("%s must be one of %s, got %s" % (path, ", ".join(options), _show(value)))
        return value
    return check


def _mapping(value, path):
    if not isinstance(value, dict):
        _fail("%s must be a mapping (key: value), got %s" % (path or "the top level", _show(value)))
    return value


def _no_unknown(mapping, path, valid, problems, what=""):
    """Record each key of `mapping` that is not in `valid`."""
    for key in mapping:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            problems.add("%sunknown key %s%s (valid: %s)%s"
                         % (_at(path), _show(key), what, ", ".join(sorted(valid)),
                            "; did you mean '%s'?" % close[0] if close else ""))


def _section(value, path, spec, problems, what=""):
    """Check a mapping against a field table: {key: checked value or default} for the keys that
    pass; each bad, missing or unknown key is recorded in `problems` (bad ones are left out).
    Raises _Invalid when `value` is not a mapping (null is an empty one)."""
    mapping = _mapping({} if value is None else value, path)
    _no_unknown(mapping, path, spec, problems, what)
    out = {}
    for key, field in spec.items():
        if key in mapping:
            try:
                out[key] = (field.check(mapping[key], _join(path, key)) if field.check
                            else mapping[key])
            except _Invalid as err:
                problems.add(err)
        elif field.default is _REQUIRED:
            problems.add("%smissing required key '%s'; add e.g. %s: %s"
                         % (_at(path), key, key, field.example))
        else:
            out[key] = field.default
    return out


def _names(value, path, pattern, describe, problems):
    """The entries of a mapping whose keys are valid names; each bad name is recorded and its
    entry left out (never checked further: the name would go raw into key paths). Values stay
    unchecked."""
    regex = re.compile(pattern)
    mapping = _mapping({} if value is None else value, path)
    good = {}
    for name, value in mapping.items():
        if isinstance(name, str) and regex.fullmatch(name):
            good[name] = value
        else:
            problems.add("%s: name %s must be %s" % (path, _show(name), describe))
    return good


def _defined(parsed, raw):
    """The names defined in a section for references to be checked against, or None when they
    cannot be (the section is unusable or has a bad name: its problem is recorded)."""
    return parsed if parsed is not None and len(parsed) == len(raw or {}) else None


def _list_of(check, non_empty=False):
    def checked(value, path):
        if not isinstance(value, list) or (non_empty and not value):
            _fail("%s must be a %slist like [a, b], got %s"
                  % (path, "non-empty " if non_empty else "", _show(value)))
        return tuple(check(item, "%s[%d]" % (path, i)) for i, item in enumerate(value))
    return checked


def _host(value, path):
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", value):
                return value
    _fail("%s must be an IP address or host name like 127.0.0.1, got %s" % (path, _show(value)))


def _ip(value, path):
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    _fail("%s must be an IP address like 127.0.0.1, got %s" % (path, _show(value)))


# --- sections ----------------------------------------------------------------------------------

_NAME = _text(r"[A-Za-z0-9_-]{1,79}", "letters, digits, _ and - (at most 79)")
_PORT = _integer(1, 65535)
_TOP = ("database", "fastagi", "service", "http", "servers", "dnc_lists", "campaigns")

_ENV_NAME = _text(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name")
DATABASE_FIELDS = {"url": _F(None, "sqlite:///agi-campaign.db"),     # checked by _database
                   "password_env": _F(_ENV_NAME, None)}
FASTAGI_FIELDS = {
    "host": _F(_host, "127.0.0.1"),
    "port": _F(_PORT, 4573),
    "allow": _F(_list_of(_ip), ("127.0.0.1",)),
    "max_connections": _F(_integer(1, 10000), 512),
    "max_line_bytes": _F(_integer(256, 65536), 8192),
}
HTTP_FIELDS = {
    "host": _F(_host, "127.0.0.1"),
    "port": _F(_PORT, 8080),
    "token_env": _F(_ENV_NAME, "AGI_CAMPAIGN_API_TOKEN"),
    "max_upload_bytes": _F(_integer(1024, 1 << 31), 50 * 1024 * 1024),
}
MIN_TOKEN_CHARS = 16


def _http(value, need_secrets, problems):
    """HttpConfig, or None when the section is absent (no HTTP server) or has a problem; an
    empty ``http:`` takes every default."""
    if value is _ABSENT:
        return None
    fields = _build(dict, _section(value, "http", HTTP_FIELDS, problems), HTTP_FIELDS)
    if fields is None:
        return None
    variable = fields["token_env"]
    token = os.environ.get(variable) or None
    if token is None and need_secrets:
        _fail("http.token_env: environment variable %s is not set (or empty); export %s=<a "
              "random token of at least %d characters, e.g. from `openssl rand -hex 24`> "
              "before starting" % (variable, variable, MIN_TOKEN_CHARS))
    if token is not None and (len(token) < MIN_TOKEN_CHARS or re.search(r"[^\x21-\x7e]", token)):
        _fail("http.token_env: the token in %s must be at least %d printable characters without "
              "spaces (value not shown); e.g. `openssl rand -hex 24`"
              % (variable, MIN_TOKEN_CHARS))
    return HttpConfig(token=token, **fields)


def _or_null(check):
    """`check`, or null (the key's default: not set)."""
    return lambda value, path: None if value is None else check(value, path)


def _hours_text(value, path):
    """A callee_hours value: null, or week-time text that parses (checked here, parsed again
    where it is used: the text is what the config shows)."""
    if value is None:
        return None
    if not isinstance(value, str):
        _fail("%s must be a week-time string like \"mon-fri 08:00-21:00; sat 09:00-18:00\" (in "
              "each callee's local time), got %s" % (path, _show(value)))
    try:
        parse_week_time(value)
    except WeekTimeError as err:
        message = str(err)
        if message.startswith("week_time "):
            message = message[len("week_time "):]
        _fail("%s %s" % (path, message))
    return value


SERVICE_FIELDS = {
    "tick_ms": _F(_integer(10, 1000), 200),
    "stop_deadline_s": _F(_integer(0, 3600), 30),
    "stuck_after_s": _F(_integer(10, 86400), 3600),
    "instance": _F(_or_null(_text(r"[a-z0-9]{1,16}", "1 to 16 lower-case letters or digits")),
                   None),
    "callee_hours": _F(_hours_text, None),
}


def parse_config(data, source, base_dir=None, need_secrets=True) -> Config:
    """Validate already-loaded YAML data; relative SQLite paths are resolved against base_dir.

    Raises one ConfigError listing every problem found (see the module docstring); need_secrets
    as in load_config.
    """
    problems = _Problems()
    try:
        config = _parse(data, source, base_dir, need_secrets, problems)
    except _Invalid as err:             # a problem that makes every other check meaningless
        problems.add(err)
    if len(problems) == 1:
        raise ConfigError("%s: %s" % (source, problems.texts[0]))
    if problems:
        raise ConfigError("%s: %d problems:\n  %s"
                          % (source, len(problems), "\n  ".join(problems.texts)))
    return config


def _parse(data, source, base_dir, need_secrets, problems):
    """The Config, or None when a problem was recorded."""
    if data is None:
        _fail("the file is empty; it needs at least a servers: section (see config.yaml)")
    if not isinstance(data, dict):
        _fail("the top level must be a mapping of sections (%s), got %s"
              % (", ".join(_TOP), _show(data)))
    _no_unknown(data, "", _TOP, problems)
    database = problems.check(_database, data.get("database"), base_dir, problems)
    fastagi = _build(FastAgiConfig, problems.check(
        _section, data.get("fastagi"), "fastagi", FASTAGI_FIELDS, problems), FASTAGI_FIELDS)
    service = _build(ServiceConfig, problems.check(
        _section, data.get("service"), "service", SERVICE_FIELDS, problems), SERVICE_FIELDS)
    http = problems.check(_http, data.get("http", _ABSENT), need_secrets, problems)
    servers = problems.check(_servers, data.get("servers"),
                             fastagi.port if fastagi else FASTAGI_FIELDS["port"].default,
                             need_secrets, problems)
    dnc_lists = problems.check(_dnc_lists, data.get("dnc_lists"), problems)
    campaigns = problems.check(_names, data.get("campaigns"), "campaigns", r"[A-Za-z0-9_-]{1,64}",
                               "1-64 letters, digits, _ or -", problems) or {}
    known_servers = _defined(servers, data.get("servers"))
    known_lists = _defined(dnc_lists, data.get("dnc_lists"))
    hours = service.callee_hours if service else None
    campaigns = {name: problems.check(_campaign, name, raw, known_servers, known_lists, problems,
                                      hours, need_secrets)
                 for name, raw in campaigns.items()}
    if problems:
        return None
    return Config(path=source, database=database, fastagi=fastagi, service=service,
                  servers=servers, dnc_lists=dnc_lists, campaigns=campaigns, http=http)


def _build(cls, fields, spec):
    """cls(**fields) when every key of the field table passed, else None."""
    return cls(**fields) if fields is not None and len(fields) == len(spec) else None


def _database(value, base_dir, problems):
    fields = _section(value, "database", DATABASE_FIELDS, problems)
    if "url" not in fields:
        return None
    url = _database_url(fields["url"], "database.url", base_dir)
    variable = fields.get("password_env")
    if variable is None:
        return DatabaseConfig(url) if "password_env" in fields else None
    if not url.startswith(POSTGRES_SCHEMES):
        _fail("database.password_env applies only to a postgresql:// url; remove it (SQLite has "
              "no password)")
    if parse_postgres_url(url).password is not None:
        _fail("database has both a password in url and password_env; keep exactly one "
              "(password_env keeps the password out of the file)")
    password = os.environ.get(variable)
    if not password:
        _fail("database.password_env: environment variable %s is not set (or empty); export "
              "%s=<database password> before starting, or put the password, percent-encoded, in "
              "database.url" % (variable, variable))
    return DatabaseConfig(with_password(url, password), variable)


def _database_url(value, path, base_dir):
    if not isinstance(value, str):
        _fail("%s must be a string like sqlite:///agi-campaign.db, got %s" % (path, _show(value)))
    if value.startswith("sqlite:///"):
        file = value[len("sqlite:///"):]
        if not file:
            _fail("%s names no file; use e.g. sqlite:///agi-campaign.db" % path)
        if file == ":memory:" or base_dir is None or os.path.isabs(file):
            return value
        return "sqlite:///" + os.path.normpath(os.path.join(base_dir, file))
    if value.startswith(POSTGRES_SCHEMES):
        try:
            parse_postgres_url(value)
        except ValueError as err:
            _fail("%s is not a valid PostgreSQL URL: %s; got %s; %s"
                  % (path, err, _show(mask_url(value)), POSTGRES_URL_HINT))
        return value
    _fail("%s must start with sqlite:/// or postgresql://, got %s" % (path, _show(mask_url(value))))


# --- servers -----------------------------------------------------------------------------------

def _dial_template(value, path):
    if not isinstance(value, str):
        _fail("%s must be a string like PJSIP/{number}@trunk, got %s" % (path, _show(value)))
    for char in re.sub(r"\{[^{}]*\}", "", value):
        if not re.fullmatch(r"[A-Za-z0-9/@._+:-]", char):
            _fail("%s must not contain %r: only letters, digits and / @ . _ + : - are allowed "
                  "besides {number} and {national}, because commas, '&', spaces, '$', quotes or "
                  "newlines would let a value reach Dial() options or another channel; got %s"
                  % (path, char, _show(value)))
    names = re.findall(r"\{([^{}]*)\}", value)
    for name in names:
        if name not in DIAL_PLACEHOLDERS:
            _fail("%s has unknown placeholder {%s}; only {number} and {national} are allowed, "
                  "got %s" % (path, name, _show(value)))
    if not names:
        _fail("%s must contain {number} or {national}, got %s" % (path, _show(value)))
    return value


def _agi_url(value, path):
    match = isinstance(value, str) and re.fullmatch(
        r"agi://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?", value)
    if not match or (match.group(1) and not 1 <= int(match.group(1)) <= 65535):
        _fail("%s must look like agi://HOST[:PORT] with no path (the dialplan appends /connect "
              "and /result), got %s" % (path, _show(value)))
    return value


def _cps(value, path):
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0.1 <= value <= 1000):
        _fail("%s must be a number of calls per second 0.1..1000 (the carrier's limit), got %s"
              % (path, _show(value)))
    return float(value)


def _secret(value, path):
    if not isinstance(value, str) or not value or re.search(r"[\x00-\x1f\x7f]", value):
        _fail("%s must be a non-empty string without newlines or control characters "
              "(value not shown)" % path)
    return value


AMI_FIELDS = {
    "host": _F(_host, "127.0.0.1"),
    "port": _F(_PORT, 5038),
    "username": _F(_text(r"[A-Za-z0-9_.-]+", "letters, digits, _ . or -"), _REQUIRED,
                   "agi-campaign"),
    "secret": _F(_secret, None),
    "secret_env": _F(_text(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name"), None),
}
SERVER_FIELDS = {
    "ami": _F(None, _REQUIRED, "{host: 127.0.0.1, port: 5038, username: agi-campaign, "
                               "secret_env: AGI_CAMPAIGN_AMI_SECRET}"),
    "dial_template": _F(_dial_template, _REQUIRED, '"PJSIP/{number}@trunk"'),
    "agi_url": _F(_agi_url, None),
    "dialout_context": _F(_NAME, "agi-campaign-dialout"),
    "connect_context": _F(_NAME, "agi-campaign-connect"),
    "call_path": _F(_choice(*CALL_PATHS), "direct"),
    "call_context": _F(_NAME, "agi-campaign-call"),
    "hangup_context": _F(_NAME, "agi-campaign-hangup"),
    "max_channels": _F(_or_null(_integer(1, 100000)), None),
    "max_cps": _F(_or_null(_cps), None),
}


def _servers(value, fastagi_port, need_secrets, problems):
    """{name: ServerConfig, or None when it has a problem}."""
    if value is None or value == {}:
        _fail("servers must define at least one Asterisk server; add e.g. servers: {main: "
              "{ami: {...}, dial_template: \"PJSIP/{number}@trunk\"}}")
    names = _names(value, "servers", r"[a-z0-9_-]{1,32}", "1-32 characters of a-z 0-9 _ -",
                   problems)
    return {name: problems.check(_server, name, raw, fastagi_port, need_secrets, problems)
            for name, raw in names.items()}


def _server(name, raw, fastagi_port, need_secrets, problems):
    path = _join("servers", name)
    before = len(problems)
    fields = _section(raw, path, SERVER_FIELDS, problems)
    ami, secret = {}, None
    if "ami" in fields:
        ami = problems.check(_ami, fields["ami"], path + ".ami", problems) or {}
    if "secret" in ami and "secret_env" in ami:
        secret = problems.check(_ami_secret, ami, path + ".ami", need_secrets)
    if len(problems) > before:
        return None
    return ServerConfig(
        name=name, ami_host=ami["host"], ami_port=ami["port"], ami_username=ami["username"],
        ami_secret=secret, dial_template=fields["dial_template"],
        agi_url=fields["agi_url"] or "agi://127.0.0.1:%d" % fastagi_port,
        dialout_context=fields["dialout_context"], connect_context=fields["connect_context"],
        ami_secret_env=ami["secret_env"], max_channels=fields["max_channels"],
        max_cps=fields["max_cps"], call_path=fields["call_path"],
        call_context=fields["call_context"], hangup_context=fields["hangup_context"])


def _ami(value, path, problems):
    """The ami: fields that pass (as _section; null is not an empty mapping here)."""
    return _section(_mapping(value, path), path, AMI_FIELDS, problems)


def _ami_secret(ami, path, need_secrets):
    """The secret, from the file or its environment variable; None when that variable is unset
    and not need_secrets."""
    if ami["secret"] is not None and ami["secret_env"] is not None:
        _fail("%s has both secret and secret_env; keep exactly one (secret_env keeps the secret "
              "out of the file)" % path)
    if ami["secret"] is not None:
        return ami["secret"]
    variable = ami["secret_env"]
    if variable is None:
        _fail("%s: missing secret_env (or secret); add secret_env: AGI_CAMPAIGN_AMI_SECRET and "
              "export that variable" % path)
    if not os.environ.get(variable):
        if not need_secrets:
            return None
        _fail("%s.secret_env: environment variable %s is not set (or empty); export %s=<AMI "
              "secret> before starting, or use secret:" % (path, variable, variable))
    return _secret(os.environ[variable], "environment variable " + variable)


def missing_secrets(config):
    """The environment variables named by secret_env / token_env that were unset at load
    (need_secrets=False), each once, in the order: servers, campaigns' webhooks, http; `run`
    needs them."""
    names = [server.ami_secret_env for server in config.servers.values()
             if server.ami_secret is None]
    names += [c.webhook.secret_env for c in config.campaigns.values()
              if c.webhook is not None and c.webhook.secret is None]
    if config.http is not None and config.http.token is None:
        names.append(config.http.token_env)
    return list(dict.fromkeys(names))


def _dnc_lists(value, problems):
    """{name: DncListConfig, or None when it has a problem}."""
    names = _names(value, "dnc_lists", r"[a-z0-9_-]{1,64}", "1-64 characters of a-z 0-9 _ -",
                   problems)
    spec = {"description": _F(_text(r"[^\x00-\x1f]*", "a one-line string"), "")}
    out = {}
    for name, raw in names.items():
        fields = problems.check(_section, raw, _join("dnc_lists", name), spec, problems)
        out[name] = DncListConfig(name, fields["description"]) if fields else None
    return out


# --- campaigns ---------------------------------------------------------------------------------

_CALLER_ID = re.compile(r'(?:"[^"\\<>]{0,60}"\s*|[A-Za-z0-9 ._\'-]{1,60}\s*)?<\+?[0-9]{1,20}>'
                        r'|\+?[0-9]{1,20}')


def _caller_id(value, path):
    if not isinstance(value, str) or len(value) > 80:
        _fail("%s must be a string of at most 80 characters like '\"Clinic\" <12025550100>', got %s"
              % (path, _show(value)))
    bad = re.search(r"[\x00-\x1f,;]", value)
    if bad:
        _fail("%s must not contain %r (newlines, commas and ';' would break the Originate "
              "action), got %s" % (path, bad.group(), _show(value)))
    if not _CALLER_ID.fullmatch(value):
        _fail("%s must look like '\"Name\" <12025550100>' or '12025550100', got %s"
              % (path, _show(value)))
    return value


def _bool(value, path):
    if not isinstance(value, bool):
        _fail("%s must be true or false, got %s" % (path, _show(value)))
    return value


def _caller_id_number(value, path, region):
    """The number part of a caller ID must be a valid phone number: its E.164 digits (with or
    without +) or its national digits for the campaign's region, exactly (no 00 or 011 in
    front); ``caller_id_internal: true`` allows an internal extension instead."""
    number = re.search(r"\+?[0-9]+(?=>?\s*$)", value).group()
    digits = number.lstrip("+")
    for text in ("+" + digits, number):
        try:
            e164 = phone.normalize(text, region)
        except PhoneError:
            continue
        # the digits as written must be the number's own (E.164 or national), not a dialing
        # prefix (00, 011) in front of it: the caller ID is presented as written
        if digits in (e164[1:], phone.national_digits(e164)):
            return
    _fail("%s.caller_id: %s is not a valid phone number (E.164 like 12025550100, or national "
          "for region %s): a campaign must not present a malformed caller ID; for an internal "
          "extension set caller_id_internal: true" % (path, number, region))


def _timezone(value, path):
    if isinstance(value, str) and value:
        try:
            zoneinfo.ZoneInfo(value)
            return value
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    _fail("%s must be an IANA time zone name like America/New_York or UTC, got %s"
          % (path, _show(value)))


def _region(value, path):
    if not isinstance(value, str) or value not in phonenumbers.SUPPORTED_REGIONS:
        hint = _region_hint(value)
        if isinstance(value, str) and value.upper() in phonenumbers.SUPPORTED_REGIONS:
            hint = "; did you mean %r?" % value.upper()
        _fail("%s must be a two-letter region known to phonenumbers like US, GB or DE, got %s%s"
              % (path, _show(value), hint))
    return value


def _region_hint(value):
    return "; YAML reads NO (Norway) as false: write 'NO' in quotes" if value is False else ""


def _countries(value, path):
    """A list of regions, upper-cased, each once; () allows every country."""
    if not isinstance(value, list):
        _fail("%s must be a list of two-letter regions like [US, CA] ([] = every country), got %s"
              % (path, _show(value)))
    seen = {}
    for i, item in enumerate(value):
        where = "%s[%d]" % (path, i)
        if not isinstance(item, str) or item.upper() not in phonenumbers.SUPPORTED_REGIONS:
            _fail("%s must be a two-letter region known to phonenumbers like US, GB or DE, got "
                  "%s%s" % (where, _show(item), _region_hint(item)))
        code = item.upper()
        if code in seen:
            _fail("%s %r is listed twice (also %s[%d]); keep one" % (where, code, path, seen[code]))
        seen[code] = i
    return tuple(seen)


def _sound(value, path):
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_/.-]+", value) \
            or ".." in value:
        _fail("%s must be a sound file name of letters, digits, _ / . - (no '..'), like "
              "hello-world, got %s" % (path, _show(value)))
    return value


_TYPE = _F(None, _REQUIRED, "message")
ON_CONNECT_FIELDS = {
    "message": {"type": _TYPE, "sounds": _F(_list_of(_sound, True), _REQUIRED, "[hello-world]"),
                "repeat": _F(_integer(1, 10), 1), "opt_out": _F(None), "collect": _F(None)},
    "extension": {"type": _TYPE, "extension": _F(_text(r"[0-9A-Za-z*#+_-]+", "an extension like "
                                                       "\"1000\""), _REQUIRED, '"1000"'),
                  "context": _F(_NAME, "default"), "timeout_s": _F(_integer(1, 600), 30)},
    "queue": {"type": _TYPE, "queue": _F(_NAME, _REQUIRED, "sales"),
              "timeout_s": _F(_integer(1, 86400), 300)},
    "conference": {"type": _TYPE, "room": _F(_NAME, _REQUIRED, "room1")},
}
CAMPAIGN_FIELDS = {
    "caller_id": _F(_caller_id, _REQUIRED, '\'"Clinic" <12025550100>\''),
    "type": _F(_choice("on_demand", "scheduled"), _REQUIRED, "on_demand"),
    "start": _F(None), "end": _F(None), "week_time": _F(None),
    "timezone": _F(_timezone, "UTC"),
    "region": _F(_region, "US"),
    "countries": _F(_countries, ()),
    "dnc_lists": _F(_list_of(_NAME), ()),
    "dial_timeout_s": _F(_integer(5, 300), 30),
    "on_connect": _F(None, _REQUIRED, "{type: message, sounds: [hello-world]}"),
    "max_channels": _F(_integer(1, 1000), 10),
    "max_attempts": _F(_integer(1, 20), 3),
    "delay_ms": _F(_integer(0, 600000), 0),
    "retry_delay_s": _F(_integer(0, 604800), 300),
    "retry": _F(None, None),
    "caller_id_internal": _F(_bool, False),
    "server": _F(_NAME),
    "callee_hours": _F(_hours_text, None),
    "amd": _F(None, None),
    "webhook": _F(None, None),
}
AMD_FIELDS = {
    "action": _F(_choice(*AMD_ACTIONS), _REQUIRED, "hangup"),
    "sounds": _F(_list_of(_sound, True), None),
}


def _digit(value, path):
    """One key: 0-9, * or #; an unquoted YAML 0..9 is taken as that digit."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return str(value)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9*#]", value):
        _fail("%s must be one key of 0-9, * or # (quote * and #: \"#\"), got %s"
              % (path, _show(value)))
    return value


OPT_OUT_FIELDS = {
    "digit": _F(_digit, _REQUIRED, '"9"'),
    "dnc_list": _F(_NAME, _REQUIRED, "optout"),
    "confirm_sounds": _F(_list_of(_sound), ()),
}
COLLECT_FIELDS = {
    "max_digits": _F(_integer(1, 20), _REQUIRED, "1"),
    "timeout_s": _F(_integer(1, 60), 5),
    "sounds": _F(_list_of(_sound, True), _REQUIRED, "[beep]"),
}
RETRY_FIELDS = {
    "delay_s": _F(_integer(0, 2592000), None),
    "max": _F(_integer(0, 100), None),
}


def _retry(value, path, default_delay, problems):
    """``retry: {busy: {delay_s: 120, max: 5}, ...}`` -> a tuple of RetryRule (outcomes
    without a rule keep the campaign's retry_delay_s and only max_attempts caps them)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        _fail("%s must map outcomes (%s) to {delay_s: SECONDS, max: COUNT}, got %s"
              % (path, ", ".join(RETRY_OUTCOMES), _show(value)))
    rules, before = [], len(problems)
    for outcome, raw in value.items():
        where = _join(path, str(outcome))
        if outcome not in RETRY_OUTCOMES:
            problems.add("%s: %r is not an outcome with a retry rule; use one of %s"
                         % (path, outcome, ", ".join(RETRY_OUTCOMES)))
            continue
        known = len(problems)
        fields = problems.check(_section, raw, where, RETRY_FIELDS, problems)
        if fields is not None and len(problems) == known:
            delay = fields["delay_s"]
            rules.append(RetryRule(outcome, default_delay if delay is None else delay,
                                   fields["max"]))
    return tuple(rules) if len(problems) == before else None


def _amd(value, path, on_connect, problems):
    """``amd: {action: hangup|message|continue, sounds: [...]}`` -> AmdConfig, or None when
    absent or with a problem. ``sounds`` (for ``message``) default to the campaign's message
    sounds; a campaign whose on_connect is not a message must give them."""
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail("%s must be a mapping like {action: hangup}, got %s" % (path, _show(value)))
    before = len(problems)
    fields = _section(value, path, AMD_FIELDS, problems)
    if len(problems) > before:
        return None
    sounds = fields["sounds"]
    if fields["action"] == "message" and sounds is None:
        if on_connect is not None and on_connect.type == "message":
            sounds = on_connect.sounds
        elif on_connect is not None:
            _fail("%s.sounds is required for action message when on_connect is not a message "
                  "(type %s); add e.g. sounds: [vm-goodbye]" % (path, on_connect.type))
    elif fields["action"] != "message" and sounds is not None:
        _fail("%s.sounds is only for action message; remove it or set action: message" % path)
    return AmdConfig(fields["action"], tuple(sounds or ()))


def _campaign(name, raw, servers, dnc_lists, problems, default_hours=None, need_secrets=True):
    """The CampaignConfig, or None when it has a problem. servers and dnc_lists are the defined
    ones, or None when their section is unusable (references are then not checked).
    default_hours: service.callee_hours, for a campaign that sets no callee_hours."""
    path = _join("campaigns", name)
    before = len(problems)
    fields = _section(_mapping(raw, path), path, CAMPAIGN_FIELDS, problems)
    start, end, week_time = _schedule(fields, path, problems)
    hours_text = fields.get("callee_hours") or default_hours
    if "dnc_lists" in fields and dnc_lists is not None:
        for i, list_name in enumerate(fields["dnc_lists"]):
            if list_name not in dnc_lists:
                problems.add("%s.dnc_lists[%d] %r is not defined under dnc_lists (defined: %s)"
                             % (path, i, list_name, ", ".join(dnc_lists) or "none"))
    on_connect = server = None
    if "on_connect" in fields:
        on_connect = problems.check(_on_connect, fields["on_connect"], path + ".on_connect",
                                    problems, dnc_lists)
    opt_out = on_connect.opt_out if on_connect is not None else None
    if opt_out is not None and opt_out.dnc_list not in fields.get("dnc_lists", (opt_out.dnc_list,)):
        problems.add("%s.on_connect.opt_out.dnc_list %r must also be in %s.dnc_lists, so that "
                     "this campaign never calls back a number that opted out (after a reset); "
                     "add it there" % (path, opt_out.dnc_list, path))
    if "server" in fields and servers is not None:
        server = problems.check(_server_ref, fields["server"], path, servers)
    retry = problems.check(_retry, fields.get("retry"), path + ".retry",
                           fields.get("retry_delay_s", 300), problems)
    amd = problems.check(_amd, fields.get("amd"), path + ".amd", on_connect, problems)
    webhook = problems.check(_webhook, fields.get("webhook"), path + ".webhook", need_secrets,
                             problems)
    internal = fields.get("caller_id_internal", True)      # True when that key is bad
    if "caller_id" in fields and "region" in fields and not internal:
        problems.check(_caller_id_number, fields["caller_id"], path, fields["region"])
    if len(problems) > before:
        return None
    return CampaignConfig(
        name=name, caller_id=fields["caller_id"], type=fields["type"], start=start, end=end,
        week_time=week_time, week_time_text=fields["week_time"], timezone=fields["timezone"],
        region=fields["region"], dnc_lists=tuple(dict.fromkeys(fields["dnc_lists"])),
        dial_timeout_s=fields["dial_timeout_s"], on_connect=on_connect,
        max_channels=fields["max_channels"], max_attempts=fields["max_attempts"],
        delay_ms=fields["delay_ms"], retry_delay_s=fields["retry_delay_s"], server=server,
        countries=fields["countries"], retry=retry,
        caller_id_internal=fields["caller_id_internal"], callee_hours_text=hours_text,
        callee_hours=parse_week_time(hours_text) if hours_text is not None else None,
        amd=amd, webhook=webhook)


WEBHOOK_FIELDS = {
    "url": _F(None, _REQUIRED, "https://example.com/hooks/calls"),     # checked by _webhook_url
    "secret_env": _F(_ENV_NAME, _REQUIRED, "AGI_CAMPAIGN_WEBHOOK_SECRET"),
    "events": _F(_list_of(_choice(*WEBHOOK_EVENTS), True), WEBHOOK_EVENTS),
    "timeout_s": _F(_integer(1, 300), 10),
    "min_backoff_s": _F(_integer(1, 3600), 5),
    "max_backoff_s": _F(_integer(1, 86400), 300),
    "give_up_after_h": _F(_integer(1, 8760), 72),
}
SECRET_HINT = "whsec_ then 24 to 64 random bytes in base64, e.g. whsec_$(openssl rand -base64 32)"


def _webhook(value, path, need_secrets, problems):
    """``webhook: {url, secret_env, events, ...}`` -> WebhookConfig, or None when absent or
    with a problem. The secret is read (and its format checked) only with need_secrets."""
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail("%s must be a mapping like {url: https://example.com/hooks, secret_env: "
              "AGI_CAMPAIGN_WEBHOOK_SECRET}, got %s" % (path, _show(value)))
    before = len(problems)
    fields = _section(value, path, WEBHOOK_FIELDS, problems)
    if "url" in fields:
        problems.check(_webhook_url, fields["url"], path + ".url")
    if ("min_backoff_s" in fields and "max_backoff_s" in fields
            and fields["max_backoff_s"] < fields["min_backoff_s"]):
        problems.add("%s.max_backoff_s (%d) must be at least min_backoff_s (%d)"
                     % (path, fields["max_backoff_s"], fields["min_backoff_s"]))
    secret = None
    if need_secrets and fields.get("secret_env"):
        secret = problems.check(_webhook_secret, fields["secret_env"], path + ".secret_env")
    if len(problems) > before:
        return None
    fields["events"] = tuple(dict.fromkeys(fields["events"]))
    return WebhookConfig(secret=secret, **fields)


def _webhook_url(value, path):
    """An http(s) URL with a host; no user or password in it (it is shown by check-config and
    status: the signature is what authenticates our requests)."""
    example = "an http:// or https:// URL like https://example.com/hooks/calls"
    if not isinstance(value, str) or re.search(r"[\x00-\x20\x7f]", value):
        _fail("%s must be %s (no spaces), got %s" % (path, example, _show(value)))
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        parts = port = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        _fail("%s must be %s, got %s" % (path, example, _show(value)))
    if parts.username is not None or parts.password is not None:
        _fail("%s must not hold a user or password (value not shown); receivers authenticate "
              "our requests by their signature (see README, Webhooks)" % path)
    if port == 0 or parts.fragment:
        _fail("%s must be %s, without a #fragment or port 0, got %s" % (path, example,
                                                                       _show(value)))
    return value


def _webhook_secret(variable, path):
    """The ``whsec_...`` secret in environment variable `variable` (never shown)."""
    text = os.environ.get(variable, "")
    if not text:
        _fail("%s: environment variable %s is not set (or empty); export %s=<%s> before "
              "starting" % (path, variable, variable, SECRET_HINT))
    key = text[len("whsec_"):] if text.startswith("whsec_") else None
    try:
        raw = base64.b64decode(key + "=" * (-len(key) % 4), validate=True) if key else b""
    except (binascii.Error, ValueError):
        raw = b""
    if not 24 <= len(raw) <= 64:
        _fail("%s: environment variable %s must hold %s (value not shown)"
              % (path, variable, SECRET_HINT))
    return text


def _server_ref(name, path, servers):
    if name is None:
        if len(servers) == 1:
            return next(iter(servers))
        _fail("%s: missing required key 'server' (more than one server is defined: %s)"
              % (path, ", ".join(servers)))
    if name not in servers:
        _fail("%s.server %r is not defined under servers (defined: %s)"
              % (path, name, ", ".join(servers)))
    return name


def _schedule(fields, path, problems):
    """(start, end, week_time) for a scheduled campaign; all None for an on_demand one (and when
    the type is unknown: its problem is recorded already)."""
    if fields.get("type") != "scheduled":
        if fields.get("type") == "on_demand":
            for key in ("start", "end", "week_time"):
                if fields[key] is not None:
                    problems.add("%s.%s is only for scheduled campaigns; remove it or set type: "
                                 "scheduled" % (path, key))
        return None, None, None
    # With a bad timezone (recorded already) the times are still checked, read in UTC.
    zone = zoneinfo.ZoneInfo(fields.get("timezone", "UTC"))
    start = problems.check(_local_datetime, fields["start"], path + ".start", zone)
    end = problems.check(_local_datetime, fields["end"], path + ".end", zone)
    if start is not None and end is not None and end <= start:
        problems.add("%s.end must be after start (%s), got %s"
                     % (path, start.isoformat(), end.isoformat()))
    week_time = problems.check(_week_time, fields["week_time"], path)
    return start, end, week_time


def _week_time(text, path):
    if text is None:
        return None
    if not isinstance(text, str):
        _fail("%s.week_time must be a string like \"mon-fri 09:00-18:00\", got %s"
              % (path, _show(text)))
    try:
        return parse_week_time(text)
    except WeekTimeError as err:
        message = str(err)
        _fail("%s.%s" % (path, message) if message.startswith("week_time ")
              else "%s.week_time: %s" % (path, message))


def _local_datetime(value, path, zone):
    """A date-time in the campaign's zone (naive values are local wall-clock times)."""
    example = "e.g. 2026-12-01T09:00 (local time in the campaign's timezone)"
    if value is None:
        _fail("%s is required for scheduled campaigns; add %s" % (path, example))
    parsed = value if isinstance(value, _dt.datetime) else None
    if isinstance(value, str) and ":" in value:
        try:
            parsed = _dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    if parsed is None:
        _fail("%s must be a date and time, %s; got %s" % (path, example, _show(value)))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=zone)
    return parsed.astimezone(zone)


def _on_connect(value, path, problems, dnc_lists=None):
    """The OnConnect, or None when it has a problem. dnc_lists: the defined lists (None when
    that section is unusable: opt_out.dnc_list is then not checked)."""
    mapping = _mapping(value, path)
    if "type" not in mapping:
        _fail("%s: missing required key 'type'; add type: %s"
              % (path, ", ".join(ON_CONNECT_FIELDS)))
    kind = _choice(*ON_CONNECT_FIELDS)(mapping["type"], path + ".type")
    before = len(problems)
    fields = _section(mapping, path, ON_CONNECT_FIELDS[kind], problems, " for type %s" % kind)
    if kind == "message":
        fields["opt_out"] = problems.check(_opt_out, fields.get("opt_out"), path + ".opt_out",
                                           dnc_lists, problems)
        fields["collect"] = problems.check(_collect, fields.get("collect"), path + ".collect",
                                           problems)
    if len(problems) > before:
        return None
    fields["type"] = kind
    return OnConnect(**fields)


def _opt_out(value, path, dnc_lists, problems):
    """``opt_out: {digit, dnc_list, confirm_sounds}`` -> OptOut (None when absent)."""
    if value is None:
        return None
    before = len(problems)
    fields = _section(value, path, OPT_OUT_FIELDS, problems)
    name = fields.get("dnc_list")
    if name is not None and dnc_lists is not None and name not in dnc_lists:
        problems.add("%s.dnc_list %r is not defined under dnc_lists (defined: %s); the "
                     "opted-out numbers must go on a configured list"
                     % (path, name, ", ".join(dnc_lists) or "none"))
    if len(problems) > before:
        return None
    return OptOut(fields["digit"], fields["dnc_list"], fields["confirm_sounds"])


def _collect(value, path, problems):
    """``collect: {max_digits, timeout_s, sounds}`` -> Collect (None when absent)."""
    if value is None:
        return None
    before = len(problems)
    fields = _section(value, path, COLLECT_FIELDS, problems)
    if len(problems) > before:
        return None
    return Collect(fields["max_digits"], fields["timeout_s"], fields["sounds"])


# --- display -----------------------------------------------------------------------------------

def to_display_dict(cfg):
    """The effective configuration as JSON-ready data shaped like the YAML; secrets are '***'."""
    return {
        "path": str(cfg.path),
        "database": _database_dict(cfg.database),
        "fastagi": {**dataclasses.asdict(cfg.fastagi), "allow": list(cfg.fastagi.allow)},
        "service": dataclasses.asdict(cfg.service),
        **({"http": _http_dict(cfg.http)} if cfg.http else {}),
        "servers": {name: _server_dict(server) for name, server in cfg.servers.items()},
        "dnc_lists": {name: {"description": dnc.description}
                      for name, dnc in cfg.dnc_lists.items()},
        "campaigns": {name: _campaign_dict(campaign) for name, campaign in cfg.campaigns.items()},
    }


def _http_dict(http):
    return {"host": http.host, "port": http.port, "token_env": http.token_env,
            "max_upload_bytes": http.max_upload_bytes}


def _database_dict(database):
    out = {"url": mask_url(database.url)}
    if database.password_env:
        out["password_env"] = database.password_env
    return out


def _server_dict(server):
    secret = ({"secret": "***"} if server.ami_secret is not None
              else {"secret_env": server.ami_secret_env})     # loaded with need_secrets=False
    return {
        "ami": {"host": server.ami_host, "port": server.ami_port,
                "username": server.ami_username, **secret},
        "dial_template": server.dial_template, "agi_url": server.agi_url,
        "dialout_context": server.dialout_context, "connect_context": server.connect_context,
        "call_path": server.call_path, "call_context": server.call_context,
        "hangup_context": server.hangup_context,
        **{key: getattr(server, key) for key in ("max_channels", "max_cps")
           if getattr(server, key) is not None},
    }


def _campaign_dict(campaign):
    out = {"caller_id": campaign.caller_id, "type": campaign.type}
    if campaign.type == "scheduled":
        out.update(start=campaign.start.isoformat(), end=campaign.end.isoformat())
        if campaign.week_time_text is not None:
            out["week_time"] = campaign.week_time_text
    on_connect = _plain(dataclasses.asdict(campaign.on_connect))
    out.update(timezone=campaign.timezone, region=campaign.region,
               countries=list(campaign.countries), dnc_lists=list(campaign.dnc_lists),
               dial_timeout_s=campaign.dial_timeout_s, on_connect=on_connect,
               max_channels=campaign.max_channels, max_attempts=campaign.max_attempts,
               delay_ms=campaign.delay_ms, retry_delay_s=campaign.retry_delay_s,
               server=campaign.server)
    if campaign.caller_id_internal:
        out["caller_id_internal"] = True
    if campaign.retry:
        out["retry"] = {rule.outcome: {"delay_s": rule.delay_s, "max": rule.max}
                        for rule in campaign.retry}
    if campaign.callee_hours_text is not None:    # absent: settings stored before it existed
        out["callee_hours"] = campaign.callee_hours_text
    if campaign.amd is not None:
        out["amd"] = {"action": campaign.amd.action}
        if campaign.amd.action == "message":
            out["amd"]["sounds"] = list(campaign.amd.sounds)
    if campaign.webhook is not None:
        out["webhook"] = {key: (list(value) if isinstance(value, tuple) else value)
                          for key, value in dataclasses.asdict(campaign.webhook).items()
                          if key != "secret"}
    return out


def _plain(mapping):
    """A dataclasses.asdict() result without None values, its tuples as lists (YAML's shape)."""
    return {key: (_plain(value) if isinstance(value, dict)
                  else list(value) if isinstance(value, tuple) else value)
            for key, value in mapping.items() if value is not None}


def campaign_settings_json(campaign):
    """Stable JSON of one campaign's effective settings (stored with its database row)."""
    return json.dumps(_campaign_dict(campaign), sort_keys=True, separators=(",", ":"))
