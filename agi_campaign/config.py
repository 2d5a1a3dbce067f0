"""The YAML configuration: read once, validated once, returned as frozen dataclasses.

Every problem is a ConfigError "{source}: {key.path} {problem}; {fix}". Unknown keys are errors
at every level; booleans are not integers; names used across sections (servers, DNC lists) must
be defined. The YAML is read by agi_campaign.yamlsafe (aliases bounded, duplicate keys
refused, before anything is constructed).

Field tables (`_F`) hold each key's check and default; small functions do the cross-field rules.
Mappings in Config are plain dicts (the contract in DESIGN.md); treat them as read-only.

Secrets (the AMI secret, the database password) never appear in a message, a log, a repr or
check-config output: database.url is parsed and shown through agi_campaign.dburl (strict
parsing, `mask_url`), and the AMI secret is never formatted into a message.
"""
import dataclasses
import datetime as _dt
import difflib
import ipaddress
import json
import os
import re
import zoneinfo
from typing import Any, Callable, NamedTuple

import phonenumbers

from agi_campaign import yamlsafe
from agi_campaign.dburl import (POSTGRES_SCHEMES, POSTGRES_URL_HINT, mask_url,
                                parse_postgres_url, with_password)
from agi_campaign.errors import ConfigError, WeekTimeError
from agi_campaign.weektime import WeekTime, parse_week_time

DIAL_PLACEHOLDERS = ("number", "national")


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

    def __repr__(self):
        shown = ("%s=%r" % (f.name, "***" if f.name == "ami_secret" else getattr(self, f.name))
                 for f in dataclasses.fields(self))
        return "ServerConfig(%s)" % ", ".join(shown)


@dataclasses.dataclass(frozen=True)
class DncListConfig:
    name: str
    description: str


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


@dataclasses.dataclass(frozen=True)
class Config:
    path: str
    database: DatabaseConfig
    fastagi: FastAgiConfig
    service: ServiceConfig
    servers: dict
    dnc_lists: dict
    campaigns: dict


class _Invalid(Exception):
    """One validation problem; the text lacks only the "{source}: " prefix."""


def _fail(text):
    raise _Invalid(text)


# --- loading -----------------------------------------------------------------------------------

def load_config(path) -> Config:
    """Read, parse and validate the YAML file at `path`; raise ConfigError on any problem."""
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
    return parse_config(data, source, os.path.dirname(os.path.abspath(source)))


# --- generic checks ----------------------------------------------------------------------------

class _F(NamedTuple):
    """A key's check (None: the caller checks it) and default (_REQUIRED: must be given)."""

    check: Callable[[Any, str], Any] | None
    default: Any = None
    example: str = ""


_REQUIRED = object()


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


def _no_unknown(mapping, path, valid, what=""):
    for key in mapping:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            _fail("%sunknown key %s%s (valid: %s)%s"
                  % (_at(path), _show(key), what, ", ".join(sorted(valid)),
                     "; did you mean '%s'?" % close[0] if close else ""))


def _section(value, path, spec, what=""):
    """Check a mapping against a field table; return {key: checked value or default}."""
    mapping = _mapping({} if value is None else value, path)
    _no_unknown(mapping, path, spec, what)
    out = {}
    for key, field in spec.items():
        if key in mapping:
            out[key] = field.check(mapping[key], _join(path, key)) if field.check else mapping[key]
        elif field.default is _REQUIRED:
            _fail("%smissing required key '%s'; add e.g. %s: %s" % (_at(path), key, key,
                                                                  field.example))
        else:
            out[key] = field.default
    return out


def _names(value, path, pattern, describe):
    """A mapping whose keys are names; values stay unchecked."""
    regex = re.compile(pattern)
    mapping = _mapping({} if value is None else value, path)
    for name in mapping:
        if not isinstance(name, str) or not regex.fullmatch(name):
            _fail("%s: name %s must be %s" % (path, _show(name), describe))
    return mapping


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
_TOP = ("database", "fastagi", "service", "servers", "dnc_lists", "campaigns")

_ENV_NAME = _text(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name")
DATABASE_FIELDS = {"url": _F(None, "sqlite:///agi-campaign.db"),
                   "password_env": _F(_ENV_NAME, None)}
FASTAGI_FIELDS = {
    "host": _F(_host, "127.0.0.1"),
    "port": _F(_PORT, 4573),
    "allow": _F(_list_of(_ip), ("127.0.0.1",)),
    "max_connections": _F(_integer(1, 10000), 512),
    "max_line_bytes": _F(_integer(256, 65536), 8192),
}
def _or_null(check):
    """`check`, or null (the key's default: not set)."""
    return lambda value, path: None if value is None else check(value, path)


SERVICE_FIELDS = {
    "tick_ms": _F(_integer(10, 1000), 200),
    "stop_deadline_s": _F(_integer(0, 3600), 30),
    "stuck_after_s": _F(_integer(10, 86400), 3600),
    "instance": _F(_or_null(_text(r"[a-z0-9]{1,16}", "1 to 16 lower-case letters or digits")),
                   None),
}


def parse_config(data, source, base_dir=None) -> Config:
    """Validate already-loaded YAML data; relative SQLite paths are resolved against base_dir."""
    try:
        return _parse(data, source, base_dir)
    except _Invalid as err:
        raise ConfigError("%s: %s" % (source, err)) from None


def _parse(data, source, base_dir):
    if data is None:
        _fail("the file is empty; it needs at least a servers: section (see config.yaml)")
    if not isinstance(data, dict):
        _fail("the top level must be a mapping of sections (%s), got %s"
              % (", ".join(_TOP), _show(data)))
    _no_unknown(data, "", _TOP)
    database = _section(data.get("database"), "database", DATABASE_FIELDS)
    fastagi = FastAgiConfig(**_section(data.get("fastagi"), "fastagi", FASTAGI_FIELDS))
    servers = _servers(data.get("servers"), fastagi.port)
    dnc_lists = _dnc_lists(data.get("dnc_lists"))
    campaigns = _names(data.get("campaigns"), "campaigns", r"[A-Za-z0-9_-]{1,64}",
                       "1-64 letters, digits, _ or -")
    return Config(
        path=source,
        database=_database(database, base_dir),
        fastagi=fastagi,
        service=ServiceConfig(**_section(data.get("service"), "service", SERVICE_FIELDS)),
        servers=servers,
        dnc_lists=dnc_lists,
        campaigns={name: _campaign(name, raw, servers, dnc_lists)
                   for name, raw in campaigns.items()},
    )


def _database(fields, base_dir):
    url = _database_url(fields["url"], "database.url", base_dir)
    variable = fields["password_env"]
    if variable is None:
        return DatabaseConfig(url)
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
}


def _servers(value, fastagi_port):
    if value is None or value == {}:
        _fail("servers must define at least one Asterisk server; add e.g. servers: {main: "
              "{ami: {...}, dial_template: \"PJSIP/{number}@trunk\"}}")
    names = _names(value, "servers", r"[a-z0-9_-]{1,32}", "1-32 characters of a-z 0-9 _ -")
    return {name: _server(name, raw, fastagi_port) for name, raw in names.items()}


def _server(name, raw, fastagi_port):
    path = "servers." + name
    fields = _section(raw, path, SERVER_FIELDS)
    ami = _section(_mapping(fields["ami"], path + ".ami"), path + ".ami", AMI_FIELDS)
    return ServerConfig(
        name=name, ami_host=ami["host"], ami_port=ami["port"], ami_username=ami["username"],
        ami_secret=_ami_secret(ami, path + ".ami"), dial_template=fields["dial_template"],
        agi_url=fields["agi_url"] or "agi://127.0.0.1:%d" % fastagi_port,
        dialout_context=fields["dialout_context"], connect_context=fields["connect_context"])


def _ami_secret(ami, path):
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
        _fail("%s.secret_env: environment variable %s is not set (or empty); export %s=<AMI "
              "secret> before starting, or use secret:" % (path, variable, variable))
    return _secret(os.environ[variable], "environment variable " + variable)


def _dnc_lists(value):
    names = _names(value, "dnc_lists", r"[a-z0-9_-]{1,64}", "1-64 characters of a-z 0-9 _ -")
    spec = {"description": _F(_text(r"[^\x00-\x1f]*", "a one-line string"), "")}
    return {name: DncListConfig(name, _section(raw, "dnc_lists." + name, spec)["description"])
            for name, raw in names.items()}


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
        hint = ""
        if isinstance(value, str) and value.upper() in phonenumbers.SUPPORTED_REGIONS:
            hint = "; did you mean %r?" % value.upper()
        _fail("%s must be a two-letter region known to phonenumbers like US, GB or DE, got %s%s"
              % (path, _show(value), hint))
    return value


def _sound(value, path):
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_/.-]+", value) \
            or ".." in value:
        _fail("%s must be a sound file name of letters, digits, _ / . - (no '..'), like "
              "hello-world, got %s" % (path, _show(value)))
    return value


_TYPE = _F(None, _REQUIRED, "message")
ON_CONNECT_FIELDS = {
    "message": {"type": _TYPE, "sounds": _F(_list_of(_sound, True), _REQUIRED, "[hello-world]"),
                "repeat": _F(_integer(1, 10), 1)},
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
    "dnc_lists": _F(_list_of(_NAME), ()),
    "dial_timeout_s": _F(_integer(5, 300), 30),
    "on_connect": _F(None, _REQUIRED, "{type: message, sounds: [hello-world]}"),
    "max_channels": _F(_integer(1, 1000), 10),
    "max_attempts": _F(_integer(1, 20), 3),
    "delay_ms": _F(_integer(0, 600000), 0),
    "retry_delay_s": _F(_integer(0, 604800), 300),
    "server": _F(_NAME),
}


def _campaign(name, raw, servers, dnc_lists):
    path = "campaigns." + name
    fields = _section(_mapping(raw, path), path, CAMPAIGN_FIELDS)
    start, end, week_time = _schedule(fields, path)
    for i, list_name in enumerate(fields["dnc_lists"]):
        if list_name not in dnc_lists:
            _fail("%s.dnc_lists[%d] %r is not defined under dnc_lists (defined: %s)"
                  % (path, i, list_name, ", ".join(dnc_lists) or "none"))
    return CampaignConfig(
        name=name, caller_id=fields["caller_id"], type=fields["type"], start=start, end=end,
        week_time=week_time, week_time_text=fields["week_time"], timezone=fields["timezone"],
        region=fields["region"], dnc_lists=tuple(dict.fromkeys(fields["dnc_lists"])),
        dial_timeout_s=fields["dial_timeout_s"],
        on_connect=_on_connect(fields["on_connect"], path + ".on_connect"),
        max_channels=fields["max_channels"], max_attempts=fields["max_attempts"],
        delay_ms=fields["delay_ms"], retry_delay_s=fields["retry_delay_s"],
        server=_server_ref(fields["server"], path, servers))


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


def _schedule(fields, path):
    """(start, end, week_time) for a scheduled campaign; all None for an on_demand one."""
    if fields["type"] == "on_demand":
        for key in ("start", "end", "week_time"):
            if fields[key] is not None:
                _fail("%s.%s is only for scheduled campaigns; remove it or set type: scheduled"
                      % (path, key))
        return None, None, None
    zone = zoneinfo.ZoneInfo(fields["timezone"])
    start = _local_datetime(fields["start"], path + ".start", zone)
    end = _local_datetime(fields["end"], path + ".end", zone)
    if end <= start:
        _fail("%s.end must be after start (%s), got %s"
              % (path, start.isoformat(), end.isoformat()))
    text = fields["week_time"]
    if text is None:
        return start, end, None
    if not isinstance(text, str):
        _fail("%s.week_time must be a string like \"mon-fri 09:00-18:00\", got %s"
              % (path, _show(text)))
    try:
        return start, end, parse_week_time(text)
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


def _on_connect(value, path):
    mapping = _mapping(value, path)
    if "type" not in mapping:
        _fail("%s: missing required key 'type'; add type: %s"
              % (path, ", ".join(ON_CONNECT_FIELDS)))
    kind = _choice(*ON_CONNECT_FIELDS)(mapping["type"], path + ".type")
    fields = _section(mapping, path, ON_CONNECT_FIELDS[kind], " for type %s" % kind)
    fields["type"] = kind
    return OnConnect(**fields)


# --- display -----------------------------------------------------------------------------------

def to_display_dict(cfg):
    """The effective configuration as JSON-ready data shaped like the YAML; secrets are '***'."""
    return {
        "path": str(cfg.path),
        "database": _database_dict(cfg.database),
        "fastagi": {**dataclasses.asdict(cfg.fastagi), "allow": list(cfg.fastagi.allow)},
        "service": dataclasses.asdict(cfg.service),
        "servers": {name: _server_dict(server) for name, server in cfg.servers.items()},
        "dnc_lists": {name: {"description": dnc.description}
                      for name, dnc in cfg.dnc_lists.items()},
        "campaigns": {name: _campaign_dict(campaign) for name, campaign in cfg.campaigns.items()},
    }


def _database_dict(database):
    out = {"url": mask_url(database.url)}
    if database.password_env:
        out["password_env"] = database.password_env
    return out


def _server_dict(server):
    return {
        "ami": {"host": server.ami_host, "port": server.ami_port,
                "username": server.ami_username, "secret": "***"},
        "dial_template": server.dial_template, "agi_url": server.agi_url,
        "dialout_context": server.dialout_context, "connect_context": server.connect_context,
    }


def _campaign_dict(campaign):
    out = {"caller_id": campaign.caller_id, "type": campaign.type}
    if campaign.type == "scheduled":
        out.update(start=campaign.start.isoformat(), end=campaign.end.isoformat())
        if campaign.week_time_text is not None:
            out["week_time"] = campaign.week_time_text
    on_connect = {key: list(value) if isinstance(value, tuple) else value
                  for key, value in dataclasses.asdict(campaign.on_connect).items()
                  if value is not None}
    out.update(timezone=campaign.timezone, region=campaign.region,
               dnc_lists=list(campaign.dnc_lists), dial_timeout_s=campaign.dial_timeout_s,
               on_connect=on_connect, max_channels=campaign.max_channels,
               max_attempts=campaign.max_attempts, delay_ms=campaign.delay_ms,
               retry_delay_s=campaign.retry_delay_s, server=campaign.server)
    return out


def campaign_settings_json(campaign):
    """Stable JSON of one campaign's effective settings (stored with its database row)."""
    return json.dumps(_campaign_dict(campaign), sort_keys=True, separators=(",", ":"))
