"""Configuration: the example loads, every validator rejects a bad value with its message."""
import copy
import dataclasses
import datetime as dt
import json
import pathlib
import time
import urllib.parse
from zoneinfo import ZoneInfo

import pytest

from agi_campaign import config as cfgmod
from agi_campaign import yamlsafe
from agi_campaign import db as db_mod
from agi_campaign.config import (campaign_settings_json, load_config, missing_secrets,
                                 parse_config, to_display_dict)
from agi_campaign.dburl import mask_url
from agi_campaign.errors import ConfigError

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "config.yaml"
class _Delete:
    """The value of a key to delete (a stable repr, so test ids match across xdist workers)."""

    def __repr__(self):
        return "DELETE"


DELETE = _Delete()


def base():
    """The smallest valid configuration (as loaded YAML data)."""
    return {
        "servers": {"main": {"ami": {"username": "acamp", "secret": "pw"},
                             "dial_template": "PJSIP/{number}@trunk"}},
        "dnc_lists": {"global": {"description": "opt-outs"}},
        "campaigns": {"c1": {"caller_id": "12025550100", "type": "on_demand",
                             "on_connect": {"type": "message", "sounds": ["hello-world"]}}},
    }


def scheduled():
    data = base()
    data["campaigns"]["c1"].update(type="scheduled", start="2026-12-01T09:00",
                                   end="2026-12-24T18:00", timezone="America/New_York")
    return data


def with_value(data, path, value):
    """Copy of data with the dotted path set to value (or deleted)."""
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


def error_of(data, source="config.yaml"):
    with pytest.raises(ConfigError) as info:
        parse_config(data, source)
    return str(info.value)


def load_error(path):
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


@pytest.fixture(autouse=True)
def api_token(monkeypatch):
    """The example's http.token_env set, as on a configured machine (tests of it unset it)."""
    monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", "t0ken-of-24-characters!!")


# --- the example and defaults -------------------------------------------------------------------

def test_config_example_loads(monkeypatch):
    monkeypatch.setenv("AGI_CAMPAIGN_AMI_SECRET", "s3cret")
    cfg = load_config(EXAMPLE)
    assert set(cfg.campaigns) == {"reminders", "survey-week"}
    assert cfg.servers["main"].ami_secret == "s3cret"
    assert cfg.servers["main"].ami_username == "agi-campaign"
    assert cfg.dnc_lists["global"].description == "company-wide opt-outs"
    reminders, survey = cfg.campaigns["reminders"], cfg.campaigns["survey-week"]
    assert reminders.type == "on_demand" and reminders.on_connect.sounds == ("hello-world",)
    assert reminders.region == "US" and reminders.start is None
    assert survey.type == "scheduled" and survey.on_connect.queue == "sales"
    assert survey.start.year == 2026 and survey.end.year == 2027
    assert survey.week_time is not None
    assert cfg.service.callee_hours == "mon-sat 08:00-21:00"        # a lawful default
    assert survey.callee_hours_text == "mon-sat 08:00-21:00"        # inherited
    assert reminders.callee_hours_text == "mon-fri 09:00-20:00; sat 10:00-14:00"
    assert cfg.database.url == "sqlite:///" + str(EXAMPLE.parent / "agi-campaign.db")


def test_config_example_needs_the_secret_variable(monkeypatch):
    monkeypatch.delenv("AGI_CAMPAIGN_AMI_SECRET", raising=False)
    message = load_error(EXAMPLE)
    assert "servers.main.ami.secret_env: environment variable AGI_CAMPAIGN_AMI_SECRET is not set" \
        in message


def test_config_defaults():
    cfg = parse_config(base(), "x.yaml")
    assert cfg.path == "x.yaml"
    assert cfg.database.url == "sqlite:///agi-campaign.db"
    assert cfg.fastagi == cfgmod.FastAgiConfig("127.0.0.1", 4573, ("127.0.0.1",), 512, 8192)
    assert cfg.service == cfgmod.ServiceConfig(200, 30, 3600)
    server = cfg.servers["main"]
    assert (server.ami_host, server.ami_port) == ("127.0.0.1", 5038)
    assert server.agi_url == "agi://127.0.0.1:4573"
    assert (server.dialout_context, server.connect_context) == ("agi-campaign-dialout",
                                                                 "agi-campaign-connect")
    c1 = cfg.campaigns["c1"]
    assert (c1.timezone, c1.region, c1.dnc_lists, c1.dial_timeout_s) == ("UTC", "US", (), 30)
    assert (c1.max_channels, c1.max_attempts, c1.delay_ms, c1.retry_delay_s) == (10, 3, 0, 300)
    assert c1.server == "main"
    assert c1.on_connect == cfgmod.OnConnect(type="message", sounds=("hello-world",), repeat=1)
    assert (c1.start, c1.end, c1.week_time, c1.week_time_text) == (None, None, None, None)


def test_config_agi_url_default_follows_fastagi_port():
    cfg = parse_config(with_value(base(), "fastagi.port", 5000), "x")
    assert cfg.servers["main"].agi_url == "agi://127.0.0.1:5000"


def test_config_empty_sections_take_defaults():
    data = base()
    data.update(database=None, fastagi=None, service=None)
    assert parse_config(data, "x").service.tick_ms == 200


def test_config_on_connect_types_and_defaults():
    cases = {
        "extension": ({"type": "extension", "extension": "1000"},
                      dict(extension="1000", context="default", timeout_s=30)),
        "queue": ({"type": "queue", "queue": "sales"}, dict(queue="sales", timeout_s=300)),
        "conference": ({"type": "conference", "room": "room1"}, dict(room="room1")),
    }
    for kind, (raw, expected) in cases.items():
        cfg = parse_config(with_value(base(), "campaigns.c1.on_connect", raw), "x")
        assert cfg.campaigns["c1"].on_connect == cfgmod.OnConnect(type=kind, **expected)


def test_config_scheduled_times_are_aware_in_campaign_zone():
    data = scheduled()
    data["campaigns"]["c1"]["week_time"] = "mon-fri 09:00-17:00"
    c1 = parse_config(data, "x").campaigns["c1"]
    zone = ZoneInfo("America/New_York")
    assert c1.start == dt.datetime(2026, 12, 1, 9, 0, tzinfo=zone)
    assert c1.start.utcoffset() == dt.timedelta(hours=-5)
    assert c1.end == dt.datetime(2026, 12, 24, 18, 0, tzinfo=zone)
    assert c1.week_time_text == "mon-fri 09:00-17:00" and c1.week_time is not None


def test_config_yaml_timestamp_with_offset_is_converted():
    data = scheduled()
    data["campaigns"]["c1"]["start"] = dt.datetime(2026, 12, 1, 14, 0, tzinfo=dt.timezone.utc)
    c1 = parse_config(data, "x").campaigns["c1"]
    assert c1.start.hour == 9 and c1.start.tzinfo == ZoneInfo("America/New_York")


def test_config_sqlite_url_resolved_against_config_folder(tmp_path):
    cfg = parse_config(with_value(base(), "database.url", "sqlite:///data/x.db"), "c",
                       base_dir=str(tmp_path))
    assert cfg.database.url == "sqlite:///" + str(tmp_path / "data" / "x.db")
    for url in ("sqlite:///:memory:", "sqlite:////abs/x.db", "postgresql://u:p@h:5432/db",
                "postgres://h/db"):
        cfg = parse_config(with_value(base(), "database.url", url), "c", base_dir=str(tmp_path))
        assert cfg.database.url == url


def test_config_multiple_servers_campaign_picks_one():
    data = base()
    data["servers"]["backup"] = copy.deepcopy(data["servers"]["main"])
    data["campaigns"]["c1"]["server"] = "backup"
    assert parse_config(data, "x").campaigns["c1"].server == "backup"


def test_config_dataclasses_are_frozen():
    cfg = parse_config(base(), "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.campaigns["c1"].max_channels = 5


# --- secrets ------------------------------------------------------------------------------------

def test_config_secret_masked_in_repr_and_display(monkeypatch):
    monkeypatch.setenv("MY_AMI_SECRET", "topsecret-env")
    data = with_value(base(), "servers.main.ami", {"username": "u", "secret_env": "MY_AMI_SECRET"})
    data["database"] = {"url": "postgresql://acamp:dbpass@db:5432/acamp"}
    cfg = parse_config(data, "x")
    assert cfg.servers["main"].ami_secret == "topsecret-env"
    for text in (repr(cfg.servers["main"]), str(cfg.servers["main"]), repr(cfg),
                 json.dumps(to_display_dict(cfg))):
        assert "topsecret-env" not in text and "dbpass" not in text
    display = to_display_dict(cfg)
    assert display["servers"]["main"]["ami"]["secret"] == "***"
    assert display["database"]["url"] == "postgresql://acamp:***@db:5432/acamp"
    assert "ami_secret='***'" in repr(cfg.servers["main"])


def test_config_display_is_json_and_round_trips(monkeypatch):
    monkeypatch.setenv("AGI_CAMPAIGN_AMI_SECRET", "s3cret")
    cfg = load_config(EXAMPLE)
    display = json.loads(json.dumps(to_display_dict(cfg)))
    assert display["campaigns"]["survey-week"]["start"] == "2026-12-01T09:00:00+00:00"
    del display["path"]
    again = parse_config(display, "display")
    assert again.campaigns == cfg.campaigns
    assert again.fastagi == cfg.fastagi and again.service == cfg.service


def test_config_campaign_settings_json_is_stable():
    cfg = parse_config(scheduled(), "x")
    text = campaign_settings_json(cfg.campaigns["c1"])
    assert text == campaign_settings_json(parse_config(scheduled(), "y").campaigns["c1"])
    settings = json.loads(text)
    assert settings["start"] == "2026-12-01T09:00:00-05:00"
    assert settings["on_connect"] == {"type": "message", "sounds": ["hello-world"], "repeat": 1}
    changed = parse_config(with_value(scheduled(), "campaigns.c1.max_channels", 3), "x")
    assert campaign_settings_json(changed.campaigns["c1"]) != text



# --- the database URL and its password ----------------------------------------------------------

def _pieces(password):
    """The password as written and decoded, and every 3-character piece of either."""
    forms = {password, urllib.parse.unquote(password)}
    return forms | {form[i:i + 3] for form in forms for i in range(len(form) - 2)}


def assert_hidden(text, password, allowed=()):
    leaked = sorted(piece for piece in _pieces(password) if piece in text and piece not in allowed)
    assert not leaked, (leaked, text)


HOST = "db.example.net"
# (id, url, password as written in it, the URL as shown, pieces legitimately shown elsewhere)
HOSTILE_URLS = [
    ("slash", "postgresql://app:Kq7/zX9@%s/prod" % HOST, "Kq7/zX9",
     "postgresql://***@%s/prod" % HOST, ()),
    ("slash-digits", "postgresql://app:12345/et@db/prod", "12345/et", "postgresql://***@db/prod",
     ()),
    ("hash", "postgresql://app:Kq7#zX9@%s/prod" % HOST, "Kq7#zX9",
     "postgresql://***@%s/prod" % HOST, ()),
    ("question", "postgresql://app:Kq7?zX9@%s/prod" % HOST, "Kq7?zX9",
     "postgresql://***@%s/prod" % HOST, ()),
    ("at", "postgresql://app:Kq7@zX9@%s/prod" % HOST, "Kq7@zX9",
     "postgresql://***@%s/prod" % HOST, ()),
    ("percent", "postgresql://app:Kq7%%zX9@%s/prod" % HOST, "Kq7%zX9",
     "postgresql://app:***@%s/prod" % HOST, ()),
    ("percent-at-end", "postgresql://app:Kq7zX9%%2@%s/prod" % HOST, "Kq7zX9%2",
     "postgresql://app:***@%s/prod" % HOST, ()),
    ("percent-not-utf8", "postgresql://app:Kq7%%FFzX9@%s/prod" % HOST, "Kq7%FFzX9",
     "postgresql://app:***@%s/prod" % HOST, ()),
    ("space", "postgresql://app:Kq7 zX9@%s/prod" % HOST, "Kq7 zX9",
     "postgresql://***@%s/prod" % HOST, ()),
    ("newline", "postgresql://app:Kq7\nzX9@%s/prod" % HOST, "Kq7\nzX9",
     "postgresql://***@%s/prod" % HOST, ()),
    ("everything", "postgresql://app:a/b#c?d@e:f%%g h@%s/prod" % HOST, "a/b#c?d@e:f%g h",
     "postgresql://***@%s/prod" % HOST, ()),
    ("postgres-scheme", "postgres://app:Kq7/zX9@%s/prod" % HOST, "Kq7/zX9",
     "postgres://***@%s/prod" % HOST, ()),
    ("no-at-sign", "postgresql://app:Kq7zX9/prod", "Kq7zX9", "postgresql://***", ()),
    ("bad-port", "postgresql://app:Kq7zX9@%s:54x2/prod" % HOST, "Kq7zX9",
     "postgresql://app:***@%s:54x2/prod" % HOST, ()),
    ("fragment", "postgresql://app:Kq7zX9@%s/prod#x" % HOST, "Kq7zX9",
     "postgresql://app:***@%s/prod#x" % HOST, ()),
    ("password-in-query", "postgresql://app@%s/prod?password=Kq7zX9" % HOST, "Kq7zX9",
     "postgresql://app@%s/prod?password=***" % HOST, ()),
    ("password-in-host-name", "postgresql://app:exam/ple@example.com/prod", "exam/ple",
     "postgresql://***@example.com/prod", ("exa", "xam", "ple", "m/p")),
]


@pytest.mark.parametrize("url,password,shown,allowed", [c[1:] for c in HOSTILE_URLS],
                         ids=[c[0] for c in HOSTILE_URLS])
def test_config_database_url_hostile_password_never_shown(url, password, shown, allowed):
    message = error_of(with_value(base(), "database.url", url))
    assert message.startswith("config.yaml: database.url "), message
    assert shown in message
    assert "percent-encode" in message and "database.password_env" in message
    assert_hidden(message, password, allowed)
    assert mask_url(url) == shown


# (url, the password the driver gets, the URL as shown)
VALID_URLS = [
    ("postgresql://app:Kq7%%2FzX9@%s:5432/prod" % HOST, "Kq7/zX9",
     "postgresql://app:***@%s:5432/prod" % HOST),
    ("postgresql://app:Kq7:zX9@%s/prod" % HOST, "Kq7:zX9", "postgresql://app:***@%s/prod" % HOST),
    ("postgresql://app:Kq7%%25zX9%%23%%3F%%40%%3A%%20@%s/prod" % HOST, "Kq7%zX9#?@: ",
     "postgresql://app:***@%s/prod" % HOST),
    ("postgresql://app:example@example.com/prod", "example",
     "postgresql://app:***@example.com/prod"),
    ("postgres://app@[::1]:5433/prod?sslmode=disable&connect_timeout=5", None,
     "postgres://app@[::1]:5433/prod?sslmode=disable&connect_timeout=5"),
    ("postgresql://%s/prod" % HOST, None, "postgresql://%s/prod" % HOST),
]


@pytest.mark.parametrize("url,password,shown", VALID_URLS)
def test_config_database_url_encoded_password_accepted_and_masked(url, password, shown):
    cfg = parse_config(with_value(base(), "database.url", url), "x")
    assert cfg.database.url == url
    assert mask_url(url) == shown
    assert db_mod.make_database(url).connect_params.get("password") == password
    display = json.dumps(to_display_dict(cfg))
    assert json.loads(display)["database"]["url"] == shown
    if password:
        hidden = url.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
        allowed = _pieces("example") if "example.com" in url else ()   # the host name
        for text in (repr(cfg), str(cfg.database), display):
            assert_hidden(text, hidden, allowed)



def test_config_database_url_parameters_go_to_the_driver():
    url = ("postgresql://app@%s/prod?sslmode=require&connect_timeout=5&application_name=a%%20b"
           % HOST)
    assert parse_config(with_value(base(), "database.url", url), "x").database.url == url
    params = db_mod.make_database(url).connect_params
    assert (params["sslmode"], params["connect_timeout"], params["application_name"]) == \
        ("require", "5", "a b")
    for query, shown in (("max_connections=5", "unsupported parameter max_connections after '?'"),
                         ("user=x", "unsupported parameter user after '?'"),
                         ("SSL-Mode=1", "unsupported parameter after '?'"),
                         ("sslmode", "the parameters after '?' must be name=value pairs")):
        message = error_of(with_value(base(), "database.url", url.split("?")[0] + "?" + query))
        assert shown in message, message

def test_config_database_password_env(monkeypatch):
    password = "Kq7/zX9#?@:Wv %Yp"
    monkeypatch.setenv("ACAMP_DB_PASSWORD", password)
    data = with_value(base(), "database", {"url": "postgresql://app@%s/prod" % HOST,
                                           "password_env": "ACAMP_DB_PASSWORD"})
    cfg = parse_config(data, "x")
    assert cfg.database.password_env == "ACAMP_DB_PASSWORD"
    params = db_mod.make_database(cfg.database.url).connect_params
    assert (params["user"], params["password"], params["host"]) == ("app", password, HOST)
    display = to_display_dict(cfg)
    assert display["database"] == {"url": "postgresql://app:***@%s/prod" % HOST,
                                   "password_env": "ACAMP_DB_PASSWORD"}
    for text in (repr(cfg), str(cfg.database), json.dumps(display)):
        assert_hidden(text, password)
    no_user = with_value(data, "database.url", "postgresql://%s:5433/prod" % HOST)
    params = db_mod.make_database(parse_config(no_user, "x").database.url).connect_params
    assert (params.get("user"), params["password"], params["port"]) == (None, password, 5433)


def test_config_database_password_env_errors(monkeypatch):
    monkeypatch.delenv("ACAMP_DB_PASSWORD", raising=False)
    data = with_value(base(), "database", {"url": "postgresql://app@%s/prod" % HOST,
                                           "password_env": "ACAMP_DB_PASSWORD"})
    assert error_of(data).startswith(
        "config.yaml: database.password_env: environment variable ACAMP_DB_PASSWORD is not set "
        "(or empty)")
    monkeypatch.setenv("ACAMP_DB_PASSWORD", "Kq7zX9")
    both = with_value(data, "database.url", "postgresql://app:Wv4Yt8@%s/prod" % HOST)
    message = error_of(both)
    assert "database has both a password in url and password_env; keep exactly one" in message
    assert_hidden(message, "Wv4Yt8")
    assert_hidden(message, "Kq7zX9")
    sqlite = with_value(data, "database.url", "sqlite:///x.db")
    assert "database.password_env applies only to a postgresql:// url" in error_of(sqlite)
    bad = with_value(data, "database.password_env", "1BAD")
    assert "database.password_env must be an environment variable name, got '1BAD'" \
        in error_of(bad)


# --- every validator ----------------------------------------------------------------------------

BAD_VALUES = [
    # top level and sections
    ("bogus", 1, "unknown key 'bogus' (valid: campaigns, database, dnc_lists, fastagi, http, "
                 "servers, service)"),
    ("database.extra", 1, "database: unknown key 'extra' (valid: password_env, url)"),
    ("database.url", 5, "database.url must be a string like sqlite:///agi-campaign.db, got 5"),
    ("database.url", "mysql://h/db", "database.url must start with sqlite:/// or postgresql://, "
                                     "got 'mysql://***'"),
    ("database.url", "sqlite:///", "database.url names no file; use e.g. "
                                   "sqlite:///agi-campaign.db"),
    ("database.url", "postgresql://h:99999/db", "database.url is not a valid PostgreSQL URL"),
    ("fastagi", [1], "fastagi must be a mapping (key: value), got a list"),
    ("fastagi.bogus", 1, "fastagi: unknown key 'bogus' (valid: allow, host, max_connections, "
                         "max_line_bytes, port)"),
    ("fastagi.host", "bad host", "fastagi.host must be an IP address or host name like 127.0.0.1, "
                                 "got 'bad host'"),
    ("fastagi.port", 0, "fastagi.port must be an integer 1..65535, got 0"),
    ("fastagi.port", 65536, "fastagi.port must be an integer 1..65535, got 65536"),
    ("fastagi.port", True, "fastagi.port must be an integer 1..65535, got true (a boolean)"),
    ("fastagi.port", "4573", "fastagi.port must be an integer 1..65535, got '4573'"),
    ("fastagi.port", 4573.0, "fastagi.port must be an integer 1..65535, got 4573.0"),
    ("fastagi.allow", "127.0.0.1", "fastagi.allow must be a list like [a, b], got '127.0.0.1'"),
    ("fastagi.allow", ["127.0.0.1", "nope"], "fastagi.allow[1] must be an IP address like "
                                             "127.0.0.1, got 'nope'"),
    ("fastagi.allow", [2130706433], "fastagi.allow[0] must be an IP address like 127.0.0.1, "
                                    "got 2130706433"),
    ("fastagi.max_connections", 0, "fastagi.max_connections must be an integer 1..10000, got 0"),
    ("fastagi.max_connections", 10001, "fastagi.max_connections must be an integer 1..10000, "
                                       "got 10001"),
    ("fastagi.max_line_bytes", 255, "fastagi.max_line_bytes must be an integer 256..65536, "
                                    "got 255"),
    ("fastagi.max_line_bytes", 65537, "fastagi.max_line_bytes must be an integer 256..65536, "
                                      "got 65537"),
    ("service.bogus", 1, "service: unknown key 'bogus' (valid: callee_hours, instance, "
                         "stop_deadline_s, stuck_after_s, tick_ms)"),
    ("service.callee_hours", 8, "service.callee_hours must be a week-time string like "
                                "\"mon-fri 08:00-21:00; sat 09:00-18:00\" (in each callee's "
                                "local time), got 8"),
    ("service.callee_hours", "", "service.callee_hours '': empty; write e.g."),
    ("service.callee_hours", "mon-sat 08:00-25:00", "service.callee_hours 'mon-sat 08:00-25:00': "
                                                     "bad time in slot '08:00-25:00' at column 9"),
    ("service.instance", "Sales-1", "service.instance must be 1 to 16 lower-case letters or "
                                    "digits, got 'Sales-1'"),
    ("service.tick_ms", 9, "service.tick_ms must be an integer 10..1000, got 9"),
    ("service.tick_ms", 1001, "service.tick_ms must be an integer 10..1000, got 1001"),
    ("service.tick_ms", False, "service.tick_ms must be an integer 10..1000, "
                               "got false (a boolean)"),
    ("service.stop_deadline_s", -1, "service.stop_deadline_s must be an integer 0..3600, got -1"),
    ("service.stop_deadline_s", 3601, "service.stop_deadline_s must be an integer 0..3600, "
                                      "got 3601"),
    ("service.stuck_after_s", 9, "service.stuck_after_s must be an integer 10..86400, got 9"),
    ("service.stuck_after_s", 86401, "service.stuck_after_s must be an integer 10..86400, "
                                     "got 86401"),
    # servers
    ("servers", DELETE, "servers must define at least one Asterisk server"),
    ("servers", {}, "servers must define at least one Asterisk server"),
    ("servers", ["main"], "servers must be a mapping (key: value), got a list"),
    ("servers.Main", {}, "servers: name 'Main' must be 1-32 characters of a-z 0-9 _ -"),
    ("servers.main.bogus", 1, "servers.main: unknown key 'bogus' (valid: agi_url, ami, "
                              "call_context, call_path, connect_context, dial_template, "
                              "dialout_context, hangup_context, max_channels, max_cps)"),
    ("servers.main.call_path", "pjsip", "servers.main.call_path must be one of direct, local"),
    ("servers.main.max_channels", 0, "servers.main.max_channels must be an integer 1..100000, "
                                     "got 0"),
    ("servers.main.max_cps", 0, "servers.main.max_cps must be a number of calls per second "
                                "0.1..1000 (the carrier's limit), got 0"),
    ("servers.main.max_cps", "5", "servers.main.max_cps must be a number of calls per second"),
    ("servers.main.ami", DELETE, "servers.main: missing required key 'ami'; add e.g. ami: {host:"),
    ("servers.main.ami", "x", "servers.main.ami must be a mapping (key: value), got 'x'"),
    ("servers.main.ami.bogus", 1, "servers.main.ami: unknown key 'bogus' (valid: host, port, "
                                  "secret, secret_env, username)"),
    ("servers.main.ami.host", "a b", "servers.main.ami.host must be an IP address or host name"),
    ("servers.main.ami.port", 0, "servers.main.ami.port must be an integer 1..65535, got 0"),
    ("servers.main.ami.username", DELETE, "servers.main.ami: missing required key 'username'; "
                                          "add e.g. username: agi-campaign"),
    ("servers.main.ami.username", "a b", "servers.main.ami.username must be letters, digits, "
                                         "_ . or -, got 'a b'"),
    ("servers.main.ami.secret", DELETE, "servers.main.ami: missing secret_env (or secret); add "
                                        "secret_env: AGI_CAMPAIGN_AMI_SECRET"),
    ("servers.main.ami.secret", "", "servers.main.ami.secret must be a non-empty string"),
    ("servers.main.ami.secret_env", "X", "servers.main.ami has both secret and secret_env; keep "
                                         "exactly one"),
    ("servers.main.dial_template", DELETE, "servers.main: missing required key 'dial_template'"),
    ("servers.main.dial_template", 5, "servers.main.dial_template must be a string like "
                                      "PJSIP/{number}@trunk, got 5"),
    ("servers.main.dial_template", "PJSIP/trunk", "servers.main.dial_template must contain "
                                                  "{number} or {national}, got 'PJSIP/trunk'"),
    ("servers.main.dial_template", "PJSIP/{numbr}@trunk", "servers.main.dial_template has "
                                                          "unknown placeholder {numbr}"),
    ("servers.main.dial_template", "PJSIP/{0}@trunk", "unknown placeholder {0}"),
    ("servers.main.agi_url", "http://h:4573", "servers.main.agi_url must look like "
                                              "agi://HOST[:PORT] with no path"),
    ("servers.main.agi_url", "agi://h:4573/x", "servers.main.agi_url must look like agi://"),
    ("servers.main.agi_url", "agi://h/", "servers.main.agi_url must look like agi://"),
    ("servers.main.agi_url", "agi://h:0", "servers.main.agi_url must look like agi://"),
    ("servers.main.agi_url", "agi://h:70000", "servers.main.agi_url must look like agi://"),
    ("servers.main.dialout_context", "a b", "servers.main.dialout_context must be letters, "
                                            "digits, _ and -"),
    ("servers.main.connect_context", "a;b", "servers.main.connect_context must be letters, "
                                            "digits, _ and -"),
    # dnc lists
    ("dnc_lists", ["global"], "dnc_lists must be a mapping (key: value), got a list"),
    ("dnc_lists.Global", {}, "dnc_lists: name 'Global' must be 1-64 characters of a-z 0-9 _ -"),
    ("dnc_lists.global.bogus", 1, "dnc_lists.global: unknown key 'bogus' (valid: description)"),
    ("dnc_lists.global.description", 5, "dnc_lists.global.description must be a one-line "
                                        "string, got 5"),
    # campaigns
    ("campaigns", ["c1"], "campaigns must be a mapping (key: value), got a list"),
    ("campaigns.bad name", {}, "campaigns: name 'bad name' must be 1-64 letters, digits, _ or -"),
    ("campaigns.c1", "x", "campaigns.c1 must be a mapping (key: value), got 'x'"),
    ("campaigns.c1.callee_hours", ["mon 08:00-21:00"], "campaigns.c1.callee_hours must be a "
                                                       "week-time string like"),
    ("campaigns.c1.callee_hours", "weekdays 08:00-21:00", "campaigns.c1.callee_hours "
                                                          "'weekdays 08:00-21:00': unknown day "
                                                          "'weekdays' at column 1"),
    ("campaigns.c1.callee_hours", "mon-fri 21:00-08:00", "campaigns.c1.callee_hours "
                                                         "'mon-fri 21:00-08:00': overnight slot"),
    ("campaigns.c1.max_chanels", 5, "campaigns.c1: unknown key 'max_chanels' (valid: amd, "
                                    "callee_hours, caller_id, caller_id_internal, countries, "
                                    "delay_ms, "
                                    "dial_timeout_s, dnc_lists, end, "
                                    "max_attempts, "
                                    "max_channels, on_connect, region, retry, retry_delay_s, "
                                    "server, start, timezone, type, webhook, week_time); "
                                    "did you mean 'max_channels'?"),
    ("campaigns.c1.caller_id", DELETE, "campaigns.c1: missing required key 'caller_id'; add e.g. "
                                       "caller_id: '\"Clinic\" <12025550100>'"),
    ("campaigns.c1.caller_id", 12025550100, "campaigns.c1.caller_id must be a string of at most "
                                            "80 characters"),
    ("campaigns.c1.caller_id", "1" * 81, "campaigns.c1.caller_id must be a string of at most 80"),
    ("campaigns.c1.caller_id", '"A" <1>\nAction: Hangup', "campaigns.c1.caller_id must not "
                                                          "contain '\\n'"),
    ("campaigns.c1.caller_id", '"A,B" <1>', "campaigns.c1.caller_id must not contain ','"),
    ("campaigns.c1.caller_id", '"A" <1>;x', "campaigns.c1.caller_id must not contain ';'"),
    ("campaigns.c1.caller_id", "Clinic <abc>", "campaigns.c1.caller_id must look like "
                                               "'\"Name\" <12025550100>' or '12025550100', got "
                                               "'Clinic <abc>'"),
    ("campaigns.c1.type", DELETE, "campaigns.c1: missing required key 'type'; add e.g. type: "
                                  "on_demand"),
    ("campaigns.c1.type", "weekly", "campaigns.c1.type must be one of on_demand, scheduled, got "
                                    "'weekly'"),
    ("campaigns.c1.start", "2026-12-01T09:00", "campaigns.c1.start is only for scheduled "
                                               "campaigns; remove it or set type: scheduled"),
    ("campaigns.c1.end", "2026-12-01T09:00", "campaigns.c1.end is only for scheduled campaigns"),
    ("campaigns.c1.week_time", "daily", "campaigns.c1.week_time is only for scheduled campaigns"),
    ("campaigns.c1.timezone", "Mars/Base", "campaigns.c1.timezone must be an IANA time zone name "
                                           "like America/New_York or UTC, got 'Mars/Base'"),
    ("campaigns.c1.timezone", "../etc", "campaigns.c1.timezone must be an IANA time zone name"),
    ("campaigns.c1.timezone", 5, "campaigns.c1.timezone must be an IANA time zone name"),
    ("campaigns.c1.region", "XX", "campaigns.c1.region must be a two-letter region known to "
                                  "phonenumbers like US, GB or DE, got 'XX'"),
    ("campaigns.c1.region", "us", "got 'us'; did you mean 'US'?"),
    ("campaigns.c1.dnc_lists", "global", "campaigns.c1.dnc_lists must be a list like [a, b], "
                                         "got 'global'"),
    ("campaigns.c1.dnc_lists", ["global", "vip"], "campaigns.c1.dnc_lists[1] 'vip' is not "
                                                  "defined under dnc_lists (defined: global)"),
    ("campaigns.c1.dial_timeout_s", 4, "campaigns.c1.dial_timeout_s must be an integer 5..300, "
                                       "got 4"),
    ("campaigns.c1.dial_timeout_s", 301, "campaigns.c1.dial_timeout_s must be an integer 5..300"),
    ("campaigns.c1.max_channels", 0, "campaigns.c1.max_channels must be an integer 1..1000, got 0"),
    ("campaigns.c1.max_channels", 1001, "campaigns.c1.max_channels must be an integer 1..1000, "
                                        "got 1001"),
    ("campaigns.c1.max_channels", True, "campaigns.c1.max_channels must be an integer 1..1000, "
                                        "got true (a boolean)"),
    ("campaigns.c1.max_channels", 2.5, "campaigns.c1.max_channels must be an integer 1..1000, "
                                       "got 2.5"),
    ("campaigns.c1.max_attempts", 0, "campaigns.c1.max_attempts must be an integer 1..20, got 0"),
    ("campaigns.c1.max_attempts", 21, "campaigns.c1.max_attempts must be an integer 1..20, got 21"),
    ("campaigns.c1.delay_ms", -1, "campaigns.c1.delay_ms must be an integer 0..600000, got -1"),
    ("campaigns.c1.delay_ms", 600001, "campaigns.c1.delay_ms must be an integer 0..600000"),
    ("campaigns.c1.retry_delay_s", -1, "campaigns.c1.retry_delay_s must be an integer 0..604800"),
    ("campaigns.c1.retry_delay_s", 604801, "campaigns.c1.retry_delay_s must be an integer "
                                           "0..604800, got 604801"),
    ("campaigns.c1.server", "backup", "campaigns.c1.server 'backup' is not defined under servers "
                                      "(defined: main)"),
    ("campaigns.c1.server", 5, "campaigns.c1.server must be letters, digits, _ and -"),
    # on_connect
    ("campaigns.c1.on_connect", DELETE, "campaigns.c1: missing required key 'on_connect'; add "
                                        "e.g. on_connect: {type: message, sounds: [hello-world]}"),
    ("campaigns.c1.on_connect", "hello-world", "campaigns.c1.on_connect must be a mapping"),
    ("campaigns.c1.on_connect.type", DELETE, "campaigns.c1.on_connect: missing required key "
                                             "'type'; add type: message, extension, queue, "
                                             "conference"),
    ("campaigns.c1.on_connect.type", "fax", "campaigns.c1.on_connect.type must be one of message, "
                                            "extension, queue, conference, got 'fax'"),
    ("campaigns.c1.on_connect.sounds", DELETE, "campaigns.c1.on_connect: missing required key "
                                               "'sounds'; add e.g. sounds: [hello-world]"),
    ("campaigns.c1.on_connect.sounds", [], "campaigns.c1.on_connect.sounds must be a non-empty "
                                           "list like [a, b], got a list"),
    ("campaigns.c1.on_connect.sounds", "hello-world", "campaigns.c1.on_connect.sounds must be a "
                                                      "non-empty list"),
    ("campaigns.c1.on_connect.sounds", ["../../etc/passwd"], "campaigns.c1.on_connect.sounds[0] "
                                                             "must be a sound file name"),
    ("campaigns.c1.on_connect.sounds", ["ok", "a b"], "campaigns.c1.on_connect.sounds[1] must be "
                                                      "a sound file name of letters, digits, "
                                                      "_ / . - (no '..'), like hello-world, got "
                                                      "'a b'"),
    ("campaigns.c1.on_connect.sounds", ["a&b"], "campaigns.c1.on_connect.sounds[0] must be"),
    ("campaigns.c1.on_connect.repeat", 0, "campaigns.c1.on_connect.repeat must be an integer "
                                          "1..10, got 0"),
    ("campaigns.c1.on_connect.repeat", 11, "campaigns.c1.on_connect.repeat must be an integer "
                                           "1..10, got 11"),
    ("campaigns.c1.on_connect.queue", "sales", "campaigns.c1.on_connect: unknown key 'queue' for "
                                               "type message (valid: collect, opt_out, repeat, sounds, type)"),
]


@pytest.mark.parametrize("path,value,expected", BAD_VALUES,
                         ids=["%s=%r" % (p, v) for p, v, _ in BAD_VALUES])
def test_config_rejects_bad_value(path, value, expected):
    message = error_of(with_value(base(), path, value))
    assert message.startswith("config.yaml: ")
    assert expected in message


ON_CONNECT_BAD = [
    ({"type": "extension"}, "campaigns.c1.on_connect: missing required key 'extension'; add "
                            "e.g. extension: \"1000\""),
    ({"type": "extension", "extension": 1000}, "campaigns.c1.on_connect.extension must be an "
                                               "extension like \"1000\", got 1000 (write numbers "
                                               "in quotes)"),
    ({"type": "extension", "extension": "10 00"}, "campaigns.c1.on_connect.extension must be"),
    ({"type": "extension", "extension": "1000", "context": "a b"},
     "campaigns.c1.on_connect.context must be letters, digits, _ and -"),
    ({"type": "extension", "extension": "1000", "timeout_s": 0},
     "campaigns.c1.on_connect.timeout_s must be an integer 1..600, got 0"),
    ({"type": "extension", "extension": "1000", "timeout_s": 601},
     "campaigns.c1.on_connect.timeout_s must be an integer 1..600, got 601"),
    ({"type": "extension", "extension": "1000", "sounds": ["x"]},
     "campaigns.c1.on_connect: unknown key 'sounds' for type extension (valid: context, "
     "extension, timeout_s, type)"),
    ({"type": "queue"}, "campaigns.c1.on_connect: missing required key 'queue'; add e.g. "
                        "queue: sales"),
    ({"type": "queue", "queue": "sa les"}, "campaigns.c1.on_connect.queue must be letters"),
    ({"type": "queue", "queue": "sales", "timeout_s": 0},
     "campaigns.c1.on_connect.timeout_s must be an integer 1..86400, got 0"),
    ({"type": "queue", "queue": "sales", "timeout_s": 86401},
     "campaigns.c1.on_connect.timeout_s must be an integer 1..86400, got 86401"),
    ({"type": "queue", "queue": "sales", "room": "r"},
     "campaigns.c1.on_connect: unknown key 'room' for type queue"),
    ({"type": "conference"}, "campaigns.c1.on_connect: missing required key 'room'; add e.g. "
                             "room: room1"),
    ({"type": "conference", "room": "r/1"}, "campaigns.c1.on_connect.room must be letters"),
    ({"type": "conference", "room": "r1", "timeout_s": 5},
     "campaigns.c1.on_connect: unknown key 'timeout_s' for type conference (valid: room, type)"),
]


@pytest.mark.parametrize("on_connect,expected", ON_CONNECT_BAD)
def test_config_rejects_bad_on_connect(on_connect, expected):
    message = error_of(with_value(base(), "campaigns.c1.on_connect", on_connect))
    assert "config.yaml: " + expected in message


DIAL_INJECTIONS = ["PJSIP/{number}@trunk,,tT", "PJSIP/{number}&DAHDI/1", "PJSIP/{number} @trunk",
                   "PJSIP/${EXTEN}{number}", "PJSIP/'{number}'", 'PJSIP/"{number}"',
                   "PJSIP/{number}\n", "PJSIP/{number}}", "PJSIP/{number};x", "PJSIP/{number}|x"]


@pytest.mark.parametrize("template", DIAL_INJECTIONS)
def test_config_dial_template_rejects_injection(template):
    message = error_of(with_value(base(), "servers.main.dial_template", template))
    assert message.startswith("config.yaml: servers.main.dial_template must not contain ")
    assert "would let a value reach Dial() options or another channel" in message


def test_config_dial_template_national_allowed():
    data = with_value(base(), "servers.main.dial_template", "SIP/trunk/0{national}")
    assert parse_config(data, "x").servers["main"].dial_template == "SIP/trunk/0{national}"


def test_config_secret_env_missing_names_variable(monkeypatch):
    monkeypatch.delenv("ACAMP_TEST_SECRET", raising=False)
    data = with_value(base(), "servers.main.ami", {"username": "u",
                                                   "secret_env": "ACAMP_TEST_SECRET"})
    message = error_of(data)
    assert message.startswith("config.yaml: servers.main.ami.secret_env: environment variable "
                              "ACAMP_TEST_SECRET is not set")
    monkeypatch.setenv("ACAMP_TEST_SECRET", "")
    assert "ACAMP_TEST_SECRET is not set (or empty)" in error_of(data)


def test_config_secret_env_name_checked():
    data = with_value(base(), "servers.main.ami", {"username": "u", "secret_env": "1BAD"})
    assert "servers.main.ami.secret_env must be an environment variable name, got '1BAD'" \
        in error_of(data)


def test_config_secret_with_newline_rejected_without_showing_it(monkeypatch):
    message = error_of(with_value(base(), "servers.main.ami.secret", "pw\r\nAction: Logoff"))
    assert "servers.main.ami.secret must be a non-empty string without newlines" in message
    assert "Logoff" not in message
    monkeypatch.setenv("ACAMP_TEST_SECRET", "pw\nAction: Logoff")
    data = with_value(base(), "servers.main.ami", {"username": "u",
                                                   "secret_env": "ACAMP_TEST_SECRET"})
    message = error_of(data)
    assert "environment variable ACAMP_TEST_SECRET must be a non-empty string" in message
    assert "Logoff" not in message


def test_config_server_required_when_several_defined():
    data = base()
    data["servers"]["backup"] = copy.deepcopy(data["servers"]["main"])
    assert error_of(data) == ("config.yaml: campaigns.c1: missing required key 'server' (more "
                              "than one server is defined: main, backup)")


def test_config_unknown_dnc_list_when_none_defined():
    data = with_value(base(), "campaigns.c1.dnc_lists", ["global"])
    del data["dnc_lists"]
    assert error_of(data) == ("config.yaml: campaigns.c1.dnc_lists[0] 'global' is not defined "
                              "under dnc_lists (defined: none)")


SCHEDULE_BAD = [
    ("start", DELETE, "campaigns.c1.start is required for scheduled campaigns; add e.g. "
                      "2026-12-01T09:00"),
    ("end", None, "campaigns.c1.end is required for scheduled campaigns"),
    ("start", "tomorrow", "campaigns.c1.start must be a date and time, e.g. 2026-12-01T09:00 "
                          "(local time in the campaign's timezone); got 'tomorrow'"),
    ("start", "2026-12-01", "campaigns.c1.start must be a date and time"),
    ("start", dt.date(2026, 12, 1), "campaigns.c1.start must be a date and time, e.g. "
                                    "2026-12-01T09:00 (local time in the campaign's timezone); "
                                    "got 2026-12-01"),
    ("start", "2026-13-01T09:00", "campaigns.c1.start must be a date and time"),
    ("start", 5, "campaigns.c1.start must be a date and time"),
    ("end", "2026-12-01T09:00", "campaigns.c1.end must be after start (2026-12-01T09:00:00-05:00), "
                                "got 2026-12-01T09:00:00-05:00"),
    ("end", "2026-11-01T09:00", "campaigns.c1.end must be after start"),
    ("week_time", 5, "campaigns.c1.week_time must be a string like \"mon-fri 09:00-18:00\", got 5"),
    ("week_time", "mon-fro 09:00-10:00", "campaigns.c1.week_time 'mon-fro 09:00-10:00': unknown "
                                         "day 'fro' at column 5"),
    ("week_time", "", "campaigns.c1.week_time"),
]


@pytest.mark.parametrize("key,value,expected", SCHEDULE_BAD)
def test_config_rejects_bad_schedule(key, value, expected):
    message = error_of(with_value(scheduled(), "campaigns.c1." + key, value))
    assert "config.yaml: " + expected in message


# --- the file ----------------------------------------------------------------------------------

MINIMAL_YAML = """\
servers:
  main:
    ami: {username: acamp, secret: pw}
    dial_template: "PJSIP/{number}@trunk"
"""


def write(tmp_path, content, name="config.yaml"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_config_load_minimal_file_resolves_sqlite_path(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL_YAML))
    assert cfg.path == str(tmp_path / "config.yaml")
    assert cfg.database.url == "sqlite:///" + str(tmp_path / "agi-campaign.db")


def test_config_load_accepts_bom_and_merge_keys(tmp_path):
    text = "\ufeff" + MINIMAL_YAML + (
        "campaigns:\n"
        "  a: &common {caller_id: '12025550100', type: on_demand,\n"
        "              on_connect: {type: conference, room: r}}\n"
        "  b: {<<: *common, max_channels: 2}\n")
    cfg = load_config(write(tmp_path, text))
    assert cfg.campaigns["b"].max_channels == 2 and cfg.campaigns["b"].on_connect.room == "r"


def test_config_load_non_utf8(tmp_path):
    path = write(tmp_path, MINIMAL_YAML.encode() + b"# caf\xe9\n")
    offset = len(MINIMAL_YAML.encode()) + 5
    assert load_error(path) == ("%s: byte offset %d (line 5): byte 0xe9 is not valid UTF-8; save "
                                "the file as UTF-8" % (path, offset))


def test_config_load_yaml_syntax_error(tmp_path):
    path = write(tmp_path, "servers:\n  main: [1, 2\n  other: 3\n")
    message = load_error(path)
    assert message.startswith("%s: line 3 column " % path)
    assert "invalid YAML" in message and "fix the syntax there" in message


def test_config_load_tab_indentation_is_syntax_error(tmp_path):
    message = load_error(write(tmp_path, "servers:\n\tmain: {}\n"))
    assert "line 2 column 1: invalid YAML" in message


def test_config_load_refuses_python_tags(tmp_path):
    message = load_error(write(tmp_path, "servers: !!python/object/apply:os.system [id]\n"))
    assert "line 1 column 10: invalid YAML: could not determine a constructor" in message


def test_config_load_billion_laughs_fails_fast(tmp_path):
    lines = ['lol0: &lol0 "lol"']
    for i in range(1, 10):
        lines.append("lol%d: &lol%d [%s]" % (i, i, ", ".join(["*lol%d" % (i - 1)] * 10)))
    began = time.monotonic()
    message = load_error(write(tmp_path, "\n".join(lines) + "\n"))
    assert time.monotonic() - began < 2
    assert message == ("%s: the YAML expands to more than 100000 values (aliases repeated too "
                       "often?); refusing a possible alias bomb" % (tmp_path / "config.yaml"))


def test_config_load_too_many_aliases(tmp_path):
    text = "a: &a 1\nb: [%s]\n" % ", ".join(["*a"] * 101)
    message = load_error(write(tmp_path, text))
    assert message == ("%s: line 2 column 405: more than 100 YAML aliases (*name); refusing a "
                       "possible alias bomb, write the values out" % (tmp_path / "config.yaml"))


def test_config_load_expansion_budget_under_alias_limit(tmp_path):
    # 10 levels x 9 aliases = 90 aliases, but 10**10 values once expanded.
    lines = ['a0: &a0 [%s]' % ", ".join(["x"] * 10)]
    for i in range(1, 10):
        lines.append("a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * 9)))
    message = load_error(write(tmp_path, "\n".join(lines) + "\n"))
    assert "expands to more than 100000 values" in message


def test_config_load_merge_key_doubling_refused(tmp_path):
    lines = ["m0: &m0 {k0: 1}"]
    for i in range(1, 40):
        lines.append("m%d: &m%d {<<: [*m%d, *m%d], k%d: 1}" % (i, i, i - 1, i - 1, i))
    began = time.monotonic()
    message = load_error(write(tmp_path, "\n".join(lines) + "\n"))
    assert time.monotonic() - began < 2
    assert "refusing a possible alias bomb" in message


def test_config_load_recursive_alias(tmp_path):
    message = load_error(write(tmp_path, "servers: &s [*s]\n"))
    assert "a YAML alias refers to itself; recursive values are not allowed" in message


def test_config_load_duplicate_key(tmp_path):
    text = MINIMAL_YAML + "servers: {}\n"
    assert "line 5 column 1: duplicate key 'servers'; keep one" in load_error(write(tmp_path, text))


def test_config_load_deep_nesting(tmp_path):
    message = load_error(write(tmp_path, "[" * 50000 + "]" * 50000))
    assert "nested too deeply" in message


@pytest.mark.parametrize("content", ["", "# only a comment\n", "---\n"])
def test_config_load_empty_file(tmp_path, content):
    path = write(tmp_path, content)
    assert load_error(path) == ("%s: the file is empty; it needs at least a servers: section "
                                "(see config.yaml)" % path)


@pytest.mark.parametrize("content,shown", [("- a\n- b\n", "a list"), ("hello\n", "'hello'"),
                                           ("5\n", "5")])
def test_config_load_top_level_not_mapping(tmp_path, content, shown):
    path = write(tmp_path, content)
    assert load_error(path) == ("%s: the top level must be a mapping of sections (database, "
                                "fastagi, service, http, servers, dnc_lists, campaigns), got %s"
                                % (path, shown))


def test_config_load_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert load_error(path) == ("%s: cannot read the configuration file: No such file or "
                                "directory; check the path" % path)


def test_config_load_too_large(tmp_path):
    path = write(tmp_path, MINIMAL_YAML + "#" * yamlsafe.MAX_FILE_BYTES)
    assert "file is larger than 1000000 bytes" in load_error(path)


def test_config_error_source_is_the_file_path(tmp_path):
    path = write(tmp_path, MINIMAL_YAML + "service: {tick_ms: 0}\n")
    assert load_error(path) == ("%s: service.tick_ms must be an integer 10..1000, got 0" % path)


def test_config_systemd_unit_outwaits_the_default_stop_deadline():
    """systemd must not SIGKILL a service that is still inside its stop_deadline_s."""
    import pathlib
    import re as _re

    from agi_campaign.config import SERVICE_FIELDS
    unit = (pathlib.Path(__file__).parents[2] / "scheduler" / "agi-campaign.service").read_text()
    timeout = int(_re.search(r"^TimeoutStopSec=(\d+)$", unit, _re.M).group(1))
    assert timeout > SERVICE_FIELDS["stop_deadline_s"].default + 10


# --- several problems at once -------------------------------------------------------------------

def test_config_reports_every_problem_at_once_with_its_key_path():
    data = with_value(base(), "campaigns.c1.max_channels", 0)
    data = with_value(data, "servers.main.ami.port", 70000)
    data = with_value(data, "fastagi.bogus", 1)
    message = error_of(data)
    lines = message.splitlines()
    assert lines == ["config.yaml: 3 problems:",
                     "  fastagi: unknown key 'bogus' (valid: allow, host, max_connections, "
                     "max_line_bytes, port)",
                     "  servers.main.ami.port must be an integer 1..65535, got 70000",
                     "  campaigns.c1.max_channels must be an integer 1..1000, got 0"]


def test_config_one_problem_keeps_the_one_line_message():
    assert error_of(with_value(base(), "campaigns.c1.max_channels", 0)) == (
        "config.yaml: campaigns.c1.max_channels must be an integer 1..1000, got 0")


def test_config_every_key_of_a_section_and_every_campaign_is_checked():
    data = base()
    data["campaigns"]["c2"] = copy.deepcopy(data["campaigns"]["c1"])
    data["campaigns"]["c1"].update(max_attempts=0, delay_ms=-1, bogus=1)
    del data["campaigns"]["c2"]["caller_id"]
    data["campaigns"]["c2"]["on_connect"] = {"type": "queue", "timeout_s": 0}
    data["campaigns"]["c2"]["dnc_lists"] = ["global", "nope", "gone"]
    message = error_of(data)
    assert message.startswith("config.yaml: 8 problems:\n")
    for text in ("campaigns.c1: unknown key 'bogus'", "campaigns.c1.max_attempts must be",
                 "campaigns.c1.delay_ms must be",
                 "campaigns.c2: missing required key 'caller_id'",
                 "campaigns.c2.dnc_lists[1] 'nope' is not defined",
                 "campaigns.c2.dnc_lists[2] 'gone' is not defined",
                 "campaigns.c2.on_connect: missing required key 'queue'",
                 "campaigns.c2.on_connect.timeout_s must be an integer 1..86400, got 0"):
        assert "\n  " + text in message, text


def test_config_scheduled_campaign_reports_start_end_and_week_time_together():
    data = scheduled()
    data["campaigns"]["c1"].update(start="tomorrow", end=None, week_time="mon-fro 09:00-10:00")
    message = error_of(data)
    assert message.startswith("config.yaml: 3 problems:\n")
    assert "\n  campaigns.c1.start must be a date and time" in message
    assert "\n  campaigns.c1.end is required for scheduled campaigns" in message
    assert "\n  campaigns.c1.week_time 'mon-fro 09:00-10:00': unknown day" in message


def test_config_unusable_section_is_not_reported_again_through_references():
    data = with_value(base(), "servers", ["main"])
    data["campaigns"]["c1"]["server"] = "main"
    data["dnc_lists"] = "global"
    data["campaigns"]["c1"]["dnc_lists"] = ["global"]
    message = error_of(data)
    assert message.splitlines() == [
        "config.yaml: 2 problems:",
        "  servers must be a mapping (key: value), got a list",
        "  dnc_lists must be a mapping (key: value), got 'global'"]


def test_config_bad_server_name_is_still_a_defined_server():
    data = base()
    data["servers"] = {"Main": data["servers"]["main"]}
    data["campaigns"]["c1"]["server"] = "Main"
    assert error_of(data) == ("config.yaml: servers: name 'Main' must be 1-32 characters of "
                              "a-z 0-9 _ -")


@pytest.mark.parametrize("content,expected", [
    ("servers:\n  main: [1, 2\n  other: 3\n", "line 3 column "),
    ("- a\n- b\n", "the top level must be a mapping of sections"),
    ("", "the file is empty"),
])
def test_config_unreadable_file_stops_at_the_first_problem(tmp_path, content, expected):
    message = load_error(write(tmp_path, content))
    assert "problems:" not in message and expected in message and "\n" not in message


def test_config_file_with_several_mistakes_names_the_file_once(tmp_path):
    text = MINIMAL_YAML + ("service: {tick_ms: 0, stop_deadline_s: -1}\n"
                           "fastagi: {port: 0}\n")
    path = write(tmp_path, text)
    assert load_error(path) == (
        "%s: 3 problems:\n"
        "  fastagi.port must be an integer 1..65535, got 0\n"
        "  service.tick_ms must be an integer 10..1000, got 0\n"
        "  service.stop_deadline_s must be an integer 0..3600, got -1" % path)


# --- secrets only where needed ------------------------------------------------------------------

def test_config_need_secrets_false_loads_without_the_secret_variable(monkeypatch):
    monkeypatch.delenv("AGI_CAMPAIGN_AMI_SECRET", raising=False)
    cfg = load_config(EXAMPLE, need_secrets=False)
    server = cfg.servers["main"]
    assert server.ami_secret is None and server.ami_secret_env == "AGI_CAMPAIGN_AMI_SECRET"
    assert missing_secrets(cfg) == ["AGI_CAMPAIGN_AMI_SECRET"]
    assert to_display_dict(cfg)["servers"]["main"]["ami"] == {
        "host": "127.0.0.1", "port": 5038, "username": "agi-campaign",
        "secret_env": "AGI_CAMPAIGN_AMI_SECRET"}
    message = load_error(EXAMPLE)          # need_secrets=True is the default
    assert message == ("%s: servers.main.ami.secret_env: environment variable "
                       "AGI_CAMPAIGN_AMI_SECRET is not set (or empty); export "
                       "AGI_CAMPAIGN_AMI_SECRET=<AMI secret> before starting, or use secret:"
                       % EXAMPLE)
    with pytest.raises(ConfigError, match="AGI_CAMPAIGN_AMI_SECRET is not set"):
        load_config(EXAMPLE, need_secrets=True)


def test_config_http_token_is_a_secret_only_run_needs(monkeypatch):
    monkeypatch.setenv("AGI_CAMPAIGN_AMI_SECRET", "s3cret")
    monkeypatch.delenv("AGI_CAMPAIGN_API_TOKEN")
    cfg = load_config(EXAMPLE, need_secrets=False)
    assert cfg.http.token is None and missing_secrets(cfg) == ["AGI_CAMPAIGN_API_TOKEN"]
    assert load_error(EXAMPLE) == (
        "%s: http.token_env: environment variable AGI_CAMPAIGN_API_TOKEN is not set (or "
        "empty); export AGI_CAMPAIGN_API_TOKEN=<a random token of at least 16 characters, e.g. "
        "from `openssl rand -hex 24`> before starting" % EXAMPLE)
    for weak in ("short", "has a space in it, long enough"):
        monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", weak)
        message = load_error(EXAMPLE)
        assert "http.token_env: the token in AGI_CAMPAIGN_API_TOKEN must be at least 16" in message
        assert weak not in message
    monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", "a-good-token-0123456789")
    cfg = load_config(EXAMPLE)
    assert (cfg.http.host, cfg.http.port, cfg.http.token) == ("127.0.0.1", 8080,
                                                              "a-good-token-0123456789")
    shown = json.dumps(to_display_dict(cfg)) + repr(cfg)
    assert "a-good-token" not in shown and '"token_env": "AGI_CAMPAIGN_API_TOKEN"' in shown


def test_config_http_section_absent_means_no_server_and_empty_means_defaults():
    assert parse_config(base(), "x.yaml").http is None
    data = base()
    data["http"] = None
    http = parse_config(data, "x.yaml").http
    assert (http.host, http.port, http.max_upload_bytes) == ("127.0.0.1", 8080, 50 * 1024 * 1024)
    data["http"] = {"port": 0, "max_upload_bytes": 10, "token_env": "1BAD"}
    message = error_of(data)
    for text in ("http.port must be an integer 1..65535, got 0",
                 "http.max_upload_bytes must be an integer 1024..2147483648, got 10",
                 "http.token_env must be an environment variable name"):
        assert text in message


def test_config_need_secrets_false_still_reads_a_set_secret(monkeypatch):
    monkeypatch.setenv("AGI_CAMPAIGN_AMI_SECRET", "s3cret")
    cfg = load_config(EXAMPLE, need_secrets=False)
    assert cfg.servers["main"].ami_secret == "s3cret" and missing_secrets(cfg) == []
    assert to_display_dict(cfg)["servers"]["main"]["ami"]["secret"] == "***"
    assert missing_secrets(parse_config(base(), "x", need_secrets=False)) == []


def test_config_need_secrets_false_keeps_the_other_secret_checks(monkeypatch):
    monkeypatch.delenv("ACAMP_TEST_SECRET", raising=False)
    monkeypatch.setenv("ACAMP_BAD_SECRET", "pw\nAction: Logoff")
    for ami, expected in (
            ({"username": "u", "secret": "pw", "secret_env": "ACAMP_TEST_SECRET"},
             "servers.main.ami has both secret and secret_env"),
            ({"username": "u"}, "servers.main.ami: missing secret_env (or secret)"),
            ({"username": "u", "secret_env": "1BAD"}, "must be an environment variable name"),
            ({"username": "u", "secret_env": "ACAMP_BAD_SECRET"},
             "environment variable ACAMP_BAD_SECRET must be a non-empty string")):
        with pytest.raises(ConfigError) as info:
            parse_config(with_value(base(), "servers.main.ami", ami), "x", need_secrets=False)
        assert expected in str(info.value) and "Logoff" not in str(info.value)


def test_config_missing_secrets_lists_each_variable_once(monkeypatch):
    monkeypatch.delenv("ACAMP_A", raising=False)
    monkeypatch.delenv("ACAMP_B", raising=False)
    data = base()
    data["servers"] = {name: {"ami": {"username": "u", "secret_env": var},
                              "dial_template": "PJSIP/{number}@t"}
                       for name, var in (("a", "ACAMP_A"), ("b", "ACAMP_B"), ("c", "ACAMP_A"),
                                         ("d", None))}
    data["servers"]["d"]["ami"] = {"username": "u", "secret": "pw"}
    data["campaigns"]["c1"]["server"] = "d"
    cfg = parse_config(data, "x", need_secrets=False)
    assert missing_secrets(cfg) == ["ACAMP_A", "ACAMP_B"]
    message = error_of(data)
    assert message.startswith("config.yaml: 3 problems:\n")
    assert message.count("is not set (or empty)") == 3


# --- calling hours in the callee's time --------------------------------------------------------

def test_config_callee_hours_none_by_default():
    cfg = parse_config(base(), "x")
    assert cfg.service.callee_hours is None
    assert (cfg.campaigns["c1"].callee_hours, cfg.campaigns["c1"].callee_hours_text) == (None, None)
    assert "callee_hours" not in campaign_settings_json(cfg.campaigns["c1"])   # unchanged


def test_config_callee_hours_service_default_and_campaign_own():
    data = with_value(base(), "service.callee_hours", "mon-sat 08:00-21:00")
    data["campaigns"]["c2"] = dict(data["campaigns"]["c1"], callee_hours="daily")
    data["campaigns"]["c3"] = dict(data["campaigns"]["c1"], callee_hours=None)
    cfg = parse_config(data, "x")
    c1, c2, c3 = (cfg.campaigns[n] for n in ("c1", "c2", "c3"))
    assert c1.callee_hours_text == c3.callee_hours_text == "mon-sat 08:00-21:00"
    assert c1.callee_hours.days[6] == () and c1.callee_hours.days[0] == ((480, 1260),)
    assert c2.callee_hours.always_open                 # a campaign's way out of the default
    display = json.loads(json.dumps(to_display_dict(cfg)))
    assert display["service"]["callee_hours"] == "mon-sat 08:00-21:00"
    assert display["campaigns"]["c1"]["callee_hours"] == "mon-sat 08:00-21:00"
    assert json.loads(campaign_settings_json(c2))["callee_hours"] == "daily"


def test_config_callee_hours_problems_all_reported_with_their_paths():
    data = with_value(base(), "service.callee_hours", "mon 8-9")
    data = with_value(data, "campaigns.c1.callee_hours", 5)
    message = error_of(data)
    assert message.startswith("config.yaml: 2 problems:\n")
    assert "service.callee_hours 'mon 8-9': bad time slot '8-9' at column 5" in message
    assert "campaigns.c1.callee_hours must be a week-time string" in message


# --- allowed countries --------------------------------------------------------------------------

def test_config_countries_default_is_every_country():
    c1 = parse_config(base(), "x").campaigns["c1"]
    assert c1.countries == ()
    assert to_display_dict(parse_config(base(), "x"))["campaigns"]["c1"]["countries"] == []


def test_config_countries_are_upper_cased_and_shown():
    cfg = parse_config(with_value(base(), "campaigns.c1.countries", ["us", "CA", "Gb"]), "x")
    assert cfg.campaigns["c1"].countries == ("US", "CA", "GB")
    display = json.loads(json.dumps(to_display_dict(cfg)))
    assert display["campaigns"]["c1"]["countries"] == ["US", "CA", "GB"]
    del display["path"]
    assert parse_config(display, "display").campaigns == cfg.campaigns
    assert json.loads(campaign_settings_json(cfg.campaigns["c1"]))["countries"] == \
        ["US", "CA", "GB"]


@pytest.mark.parametrize("value,expected", [
    ("US", "campaigns.c1.countries must be a list of two-letter regions like [US, CA] ([] = "
           "every country), got 'US'"),
    (["US", "XX"], "campaigns.c1.countries[1] must be a two-letter region known to phonenumbers "
                   "like US, GB or DE, got 'XX'"),
    (["USA"], "campaigns.c1.countries[0] must be a two-letter region"),
    ([1], "campaigns.c1.countries[0] must be a two-letter region known to phonenumbers like US, "
          "GB or DE, got 1"),
    (["001"], "campaigns.c1.countries[0] must be a two-letter region"),
    ([False], "campaigns.c1.countries[0] must be a two-letter region known to phonenumbers like "
              "US, GB or DE, got false (a boolean); YAML reads NO (Norway) as false: write 'NO' "
              "in quotes"),
    (["US", "CA", "us"], "campaigns.c1.countries[2] 'US' is listed twice (also "
                         "campaigns.c1.countries[0]); keep one"),
])
def test_config_countries_rejects_bad_value(value, expected):
    message = error_of(with_value(base(), "campaigns.c1.countries", value))
    assert message.startswith("config.yaml: " + expected) and "\n" not in message


def test_config_region_no_read_as_false_gets_a_hint():
    assert "YAML reads NO (Norway) as false: write 'NO' in quotes" in \
        error_of(with_value(base(), "campaigns.c1.region", False))


def test_config_countries_in_the_example_file(tmp_path, monkeypatch):
    monkeypatch.setenv("AGI_CAMPAIGN_AMI_SECRET", "s3cret")
    text = EXAMPLE.read_text().replace("# countries: [US, CA]", "countries: [US, CA]")
    assert "countries: [US, CA]" in text
    cfg = load_config(write(tmp_path, text))
    assert cfg.campaigns["reminders"].countries == ("US", "CA")
    assert load_config(EXAMPLE).campaigns["reminders"].countries == ()


def test_config_bad_name_is_not_checked_further_so_it_never_reaches_a_key_path():
    data = base()
    data["campaigns"]["bad\nAction: Originate"] = {"max_channels": 0}
    data["dnc_lists"][5] = {"description": 5}
    message = error_of(data)
    assert message.splitlines() == [
        "config.yaml: 2 problems:",
        "  dnc_lists: name 5 must be 1-64 characters of a-z 0-9 _ -",
        "  campaigns: name 'bad\\nAction: Originate' must be 1-64 letters, digits, _ or -"]


# --- retry rules per outcome ----------------------------------------------------------------

def test_config_retry_rules_defaults_and_display():
    from agi_campaign.config import RetryRule

    data = with_value(base(), "campaigns.c1.retry_delay_s", 600)
    data = with_value(data, "campaigns.c1.retry", {"busy": {"delay_s": 120, "max": 5},
                                                   "noanswer": {"max": 0}, "lost": {}})
    c1 = parse_config(data, "x").campaigns["c1"]
    assert c1.retry == (RetryRule("busy", 120, 5), RetryRule("noanswer", 600, 0),
                        RetryRule("lost", 600, None))
    assert to_display_dict(parse_config(data, "x"))["campaigns"]["c1"]["retry"] == {
        "busy": {"delay_s": 120, "max": 5}, "noanswer": {"delay_s": 600, "max": 0},
        "lost": {"delay_s": 600, "max": None}}
    assert parse_config(base(), "x").campaigns["c1"].retry == ()


@pytest.mark.parametrize("value, message", [
    ([1], r"campaigns.c1.retry must map outcomes \(busy, noanswer, congestion, unavailable, "
          r"failed, cancelled, lost, machine\) to \{delay_s: SECONDS, max: COUNT\}, got a "
          r"list"),
    ({"answered": {}}, r"campaigns.c1.retry: 'answered' is not an outcome with a retry rule; "
                       r"use one of busy, noanswer"),
    ({"busy": {"delay_s": -1}}, r"campaigns.c1.retry.busy.delay_s must be an integer "
                                r"0..2592000, got -1"),
    ({"busy": {"max": 101}}, r"campaigns.c1.retry.busy.max must be an integer 0..100, got 101"),
    ({"busy": {"tries": 3}}, r"campaigns.c1.retry.busy.*tries"),
    ({"busy": 3}, r"campaigns.c1.retry.busy"),
])
def test_config_retry_rule_errors_name_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(with_value(base(), "campaigns.c1.retry", value), "x")


# --- caller ID must be a valid number -------------------------------------------------------

@pytest.mark.parametrize("caller_id, region", [
    ("12025550100", "US"), ("+12025550100", "US"), ('"Clinic" <12025550100>', "US"),
    ('"Clinic" <+442079460000>', "US"), ("442079460000", "US"), ("02079460000", "GB"),
])
def test_config_caller_id_valid_numbers(caller_id, region):
    data = with_value(base(), "campaigns.c1.caller_id", caller_id)
    data = with_value(data, "campaigns.c1.region", region)
    assert parse_config(data, "x").campaigns["c1"].caller_id == caller_id


@pytest.mark.parametrize("caller_id", ["1", "100", '"Desk" <555>', "12025550", "99999999999",
                                       "0012025550100", "011442079460000"])
def test_config_caller_id_malformed_number_is_refused_unless_internal(caller_id):
    data = with_value(base(), "campaigns.c1.caller_id", caller_id)
    with pytest.raises(ConfigError, match=r"campaigns.c1.caller_id: [0-9]+ is not a valid phone "
                                          r"number .* caller_id_internal: true"):
        parse_config(data, "x")
    data = with_value(data, "campaigns.c1.caller_id_internal", True)
    c1 = parse_config(data, "x").campaigns["c1"]
    assert c1.caller_id_internal and to_display_dict(parse_config(data, "x"))[
        "campaigns"]["c1"]["caller_id_internal"] is True
    with pytest.raises(ConfigError, match=r"caller_id_internal must be true or false, got 'yes'"):
        parse_config(with_value(data, "campaigns.c1.caller_id_internal", "yes"), "x")


# ---- on_connect message: opt_out and collect (issue 11 item 2) ------------------------------

MSG = {"type": "message", "sounds": ["hello-world"]}


def listing():
    """base() with the campaign checking the list its opt-out writes to."""
    return with_value(base(), "campaigns.c1.dnc_lists", ["global"])


def test_config_message_opt_out_and_collect_loaded():
    on_connect = dict(MSG, opt_out={"digit": "9", "dnc_list": "global",
                                    "confirm_sounds": ["beep"]},
                      collect={"max_digits": 3, "timeout_s": 4, "sounds": ["beep", "vm-intro"]})
    cfg = parse_config(with_value(listing(), "campaigns.c1.on_connect", on_connect), "c.yaml")
    got = cfg.campaigns["c1"].on_connect
    assert got.opt_out == cfgmod.OptOut("9", "global", ("beep",))
    assert got.collect == cfgmod.Collect(3, 4, ("beep", "vm-intro"))
    shown = to_display_dict(cfg)["campaigns"]["c1"]["on_connect"]
    assert shown["opt_out"] == {"digit": "9", "dnc_list": "global", "confirm_sounds": ["beep"]}
    assert shown["collect"] == {"max_digits": 3, "timeout_s": 4, "sounds": ["beep", "vm-intro"]}
    json.loads(campaign_settings_json(cfg.campaigns["c1"]))


def test_config_message_opt_out_defaults_and_unquoted_digit():
    on_connect = dict(MSG, opt_out={"digit": 0, "dnc_list": "global"},
                      collect={"max_digits": 1, "sounds": ["beep"]})
    got = parse_config(with_value(listing(), "campaigns.c1.on_connect", on_connect),
                       "c.yaml").campaigns["c1"].on_connect
    assert got.opt_out == cfgmod.OptOut("0", "global", ())
    assert got.collect == cfgmod.Collect(1, 5, ("beep",))


def test_config_message_without_opt_out_or_collect_has_none():
    got = parse_config(base(), "c.yaml").campaigns["c1"].on_connect
    assert got.opt_out is None and got.collect is None


OPT_OUT_BAD = [
    ({"opt_out": {"digit": "99", "dnc_list": "global"}},
     "campaigns.c1.on_connect.opt_out.digit must be one key of 0-9, * or #"),
    ({"opt_out": {"digit": 10, "dnc_list": "global"}},
     "campaigns.c1.on_connect.opt_out.digit must be one key of 0-9, * or #"),
    ({"opt_out": {"digit": "A", "dnc_list": "global"}},
     "campaigns.c1.on_connect.opt_out.digit must be one key of 0-9, * or #"),
    ({"opt_out": {"dnc_list": "global"}},
     "campaigns.c1.on_connect.opt_out: missing required key 'digit'"),
    ({"opt_out": {"digit": "9"}},
     "campaigns.c1.on_connect.opt_out: missing required key 'dnc_list'"),
    ({"opt_out": {"digit": "9", "dnc_list": "nosuch"}},
     "campaigns.c1.on_connect.opt_out.dnc_list 'nosuch' is not defined under dnc_lists "
     "(defined: global)"),
    ({"opt_out": {"digit": "9", "dnc_list": "global", "confirm_sounds": ["a b"]}},
     "campaigns.c1.on_connect.opt_out.confirm_sounds[0] must be a sound file name"),
    ({"opt_out": {"digit": "9", "dnc_list": "global", "confirm_sounds": "beep"}},
     "campaigns.c1.on_connect.opt_out.confirm_sounds must be a list"),
    ({"opt_out": {"digit": "9", "dnc_list": "global", "list": "x"}},
     "campaigns.c1.on_connect.opt_out: unknown key 'list'"),
    ({"opt_out": "9"}, "campaigns.c1.on_connect.opt_out must be a mapping"),
    ({"collect": {"max_digits": 0, "sounds": ["beep"]}},
     "campaigns.c1.on_connect.collect.max_digits must be an integer 1..20, got 0"),
    ({"collect": {"max_digits": 21, "sounds": ["beep"]}},
     "campaigns.c1.on_connect.collect.max_digits must be an integer 1..20, got 21"),
    ({"collect": {"max_digits": 2, "timeout_s": 0, "sounds": ["beep"]}},
     "campaigns.c1.on_connect.collect.timeout_s must be an integer 1..60, got 0"),
    ({"collect": {"max_digits": 2, "timeout_s": 61, "sounds": ["beep"]}},
     "campaigns.c1.on_connect.collect.timeout_s must be an integer 1..60, got 61"),
    ({"collect": {"max_digits": 2}},
     "campaigns.c1.on_connect.collect: missing required key 'sounds'"),
    ({"collect": {"sounds": ["beep"]}},
     "campaigns.c1.on_connect.collect: missing required key 'max_digits'"),
    ({"collect": {"max_digits": 2, "sounds": []}},
     "campaigns.c1.on_connect.collect.sounds must be a non-empty list"),
    ({"collect": {"max_digits": 2, "sounds": ["x"], "digits": 3}},
     "campaigns.c1.on_connect.collect: unknown key 'digits'"),
]


@pytest.mark.parametrize("extra,expected", OPT_OUT_BAD, ids=[e for _, e in OPT_OUT_BAD])
def test_config_rejects_bad_opt_out_or_collect(extra, expected):
    message = error_of(with_value(listing(), "campaigns.c1.on_connect", dict(MSG, **extra)))
    assert "config.yaml: " + expected in message


def test_config_opt_out_only_for_message():
    on_connect = {"type": "queue", "queue": "sales",
                  "opt_out": {"digit": "9", "dnc_list": "global"}}
    message = error_of(with_value(listing(), "campaigns.c1.on_connect", on_connect))
    assert "campaigns.c1.on_connect: unknown key 'opt_out' for type queue" in message


def test_config_opt_out_and_collect_problems_reported_together():
    on_connect = dict(MSG, opt_out={"digit": "x", "dnc_list": "nosuch"},
                      collect={"max_digits": 0, "sounds": ["beep"]})
    message = error_of(with_value(listing(), "campaigns.c1.on_connect", on_connect))
    assert "opt_out.digit" in message and "opt_out.dnc_list 'nosuch'" in message
    assert "collect.max_digits" in message


def test_config_opt_out_list_must_be_checked_by_the_campaign_itself():
    on_connect = dict(MSG, opt_out={"digit": "9", "dnc_list": "global"})
    message = error_of(with_value(base(), "campaigns.c1.on_connect", on_connect))
    assert ("config.yaml: campaigns.c1.on_connect.opt_out.dnc_list 'global' must also be in "
            "campaigns.c1.dnc_lists") in message


# --- answering-machine detection ------------------------------------------------------------

def test_config_amd_absent_is_none():
    assert parse_config(base(), "x").campaigns["c1"].amd is None


@pytest.mark.parametrize("amd, action, sounds", [
    ({"action": "hangup"}, "hangup", ()),
    ({"action": "continue"}, "continue", ()),
    ({"action": "message"}, "message", ("hello-world",)),           # the message's sounds
    ({"action": "message", "sounds": ["vm-goodbye", "beep"]}, "message", ("vm-goodbye", "beep")),
])
def test_config_amd_actions_and_default_sounds(amd, action, sounds):
    cfg = parse_config(with_value(base(), "campaigns.c1.amd", amd), "x")
    assert cfg.campaigns["c1"].amd == cfgmod.AmdConfig(action, sounds)
    shown = to_display_dict(cfg)["campaigns"]["c1"]["amd"]
    assert shown == ({"action": action, "sounds": list(sounds)} if action == "message"
                     else {"action": action})


def test_config_amd_message_needs_sounds_without_a_message_destination():
    data = with_value(base(), "campaigns.c1.on_connect", {"type": "queue", "queue": "sales"})
    with pytest.raises(ConfigError, match=r"campaigns.c1.amd.sounds is required for action "
                                          r"message when on_connect is not a message \(type "
                                          r"queue\)"):
        parse_config(with_value(data, "campaigns.c1.amd", {"action": "message"}), "x")
    data = with_value(data, "campaigns.c1.amd", {"action": "message", "sounds": ["vm-goodbye"]})
    assert parse_config(data, "x").campaigns["c1"].amd.sounds == ("vm-goodbye",)


@pytest.mark.parametrize("value, message", [
    ("hangup", r"campaigns.c1.amd must be a mapping like \{action: hangup\}, got 'hangup'"),
    ({}, r"campaigns.c1.amd: missing required key 'action'; add e.g. action: hangup"),
    ({"action": "beep"}, r"campaigns.c1.amd.action must be one of hangup, message, continue, "
                         r"got 'beep'"),
    ({"action": "hangup", "wait": 3}, r"campaigns.c1.amd: unknown key 'wait' \(valid: action, "
                                      r"sounds\)"),
    ({"action": "message", "sounds": []}, r"campaigns.c1.amd.sounds must be a non-empty list"),
    ({"action": "message", "sounds": ["../etc/passwd"]}, r"campaigns.c1.amd.sounds\[0\] must "
                                                         r"be a sound file name"),
    ({"action": "hangup", "sounds": ["beep"]}, r"campaigns.c1.amd.sounds is only for action "
                                               r"message"),
])
def test_config_amd_errors_name_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(with_value(base(), "campaigns.c1.amd", value), "x")


def test_config_amd_problems_are_collected_with_others():
    data = with_value(base(), "campaigns.c1.amd", {"action": "beep"})
    data = with_value(data, "campaigns.c1.max_channels", 0)
    message = error_of(data)
    assert "2 problems" in message
    assert "campaigns.c1.amd.action must be one of" in message
    assert "campaigns.c1.max_channels must be an integer 1..1000" in message
