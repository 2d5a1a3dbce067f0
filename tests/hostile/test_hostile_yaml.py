"""Hostile configuration files: every one is a ConfigError whose single-line message starts
with the file's path and names the key path (or line) and the fix; nothing is constructed from
unsafe tags, nothing is written next to the file, and secrets are never echoed.
"""
import os

import pytest

from agi_campaign.config import load_config
from agi_campaign.errors import ConfigError

from tests.hostile.support import files_in

SERVERS = ('servers:\n  main:\n    ami: {host: 127.0.0.1, username: u, secret: "s3cret-x"}\n'
           '    dial_template: "PJSIP/{number}@trunk"\n')
CAMPAIGN = {"caller_id": "'\"Clinic\" <12025550100>'", "type": "on_demand",
            "on_connect": "{type: message, sounds: [hello-world]}"}


def camp(**fields):
    """A valid file with campaign c1's fields replaced (raw YAML values; None removes one)."""
    merged = dict(CAMPAIGN, **fields)
    body = "".join("    %s: %s\n" % (k, v) for k, v in merged.items() if v is not None)
    return SERVERS + "dnc_lists:\n  global: {}\ncampaigns:\n  c1:\n" + body


def server(**fields):
    base = {"ami": '{host: 127.0.0.1, username: u, secret: "s3cret-x"}',
            "dial_template": '"PJSIP/{number}@trunk"'}
    merged = dict(base, **fields)
    return "servers:\n  main:\n" + "".join("    %s: %s\n" % (k, v) for k, v in merged.items()
                                           if v is not None)


BOMB = "a: &a [" + ",".join(["x"] * 10) + "]\n" + "".join(
    "%s: &%s [%s]\n" % (c, c, ",".join(["*" + p] * 10))
    for p, c in zip("abcdefgh", "bcdefghi"))
DEEP = "servers: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_MAPS = SERVERS + "campaigns:\n  c1:\n" + "".join(
    "  " * (i + 2) + "k%d:\n" % i for i in range(60)) + "  " * 62 + "v: 1\n"

CASES = [
    # (id, text or bytes, substrings the message must contain)
    ("top-level-list", "- servers\n- campaigns\n", ["top level must be a mapping"]),
    ("top-level-scalar", "just text\n", ["top level must be a mapping"]),
    ("empty-file", "", ["the file is empty"]),
    ("comment-only", "# nothing\n---\n", ["the file is empty"]),
    ("unknown-top-key", SERVERS + "campaing: {}\n", ["unknown key 'campaing'",
                                                     "did you mean 'campaigns'"]),
    ("unknown-database-key", SERVERS + "database: {url: sqlite:///x.db, pool: 5}\n",
     ["database: unknown key 'pool'", "valid: password_env, url"]),
    ("unknown-fastagi-key", SERVERS + "fastagi: {hosts: 0.0.0.0}\n",
     ["fastagi: unknown key 'hosts'", "did you mean 'host'"]),
    ("unknown-service-key", SERVERS + "service: {tick: 5}\n", ["service: unknown key 'tick'"]),
    ("unknown-server-key", server(password='"x"'), ["servers.main: unknown key 'password'"]),
    ("unknown-ami-key", server(ami='{username: u, secret: s, pass: p}'),
     ["servers.main.ami: unknown key 'pass'"]),
    ("unknown-dnc-key", SERVERS + "dnc_lists:\n  global: {descr: x}\n",
     ["dnc_lists.global: unknown key 'descr'", "did you mean 'description'"]),
    ("unknown-campaign-key", camp(max_channel="5"),
     ["campaigns.c1: unknown key 'max_channel'", "did you mean 'max_channels'"]),
    ("unknown-on-connect-key", camp(on_connect="{type: message, sounds: [a], queue: q}"),
     ["campaigns.c1.on_connect: unknown key 'queue' for type message"]),
    ("port-string", SERVERS + "fastagi: {port: abc}\n",
     ["fastagi.port must be an integer 1..65535, got 'abc'"]),
    ("port-bool", SERVERS + "fastagi: {port: yes}\n", ["fastagi.port", "true (a boolean)"]),
    ("port-huge", SERVERS + "fastagi: {port: 99999999999999999999999}\n",
     ["fastagi.port must be an integer 1..65535"]),
    ("max-channels-zero", camp(max_channels="0"),
     ["campaigns.c1.max_channels must be an integer 1..1000, got 0"]),
    ("delay-inf", camp(delay_ms=".inf"), ["campaigns.c1.delay_ms must be an integer"]),
    ("delay-nan", camp(delay_ms=".nan"), ["campaigns.c1.delay_ms must be an integer"]),
    ("attempts-float", camp(max_attempts="2.5"), ["campaigns.c1.max_attempts", "got 2.5"]),
    ("servers-list", "servers: [main]\n", ["servers must be a mapping"]),
    ("allow-string", SERVERS + "fastagi: {allow: 0.0.0.0/0}\n",
     ["fastagi.allow must be a list"]),
    ("allow-hostname", SERVERS + "fastagi: {allow: [evil.example]}\n",
     ["fastagi.allow[0] must be an IP address"]),
    ("host-injection", SERVERS + "fastagi: {host: '0.0.0.0; rm -rf /'}\n",
     ["fastagi.host must be an IP address or host name"]),
    ("dnc-lists-set", camp(dnc_lists="!!set {global: null}"),
     ["campaigns.c1.dnc_lists must be a list"]),
    ("start-as-list", camp(type="scheduled", start="[2026, 12, 1]", end="2026-12-02T00:00"),
     ["campaigns.c1.start must be a date and time"]),
    ("alias-bomb", SERVERS + BOMB, ["expands to more than 100000 values", "alias bomb"]),
    ("many-aliases", SERVERS + "x: &x 1\ny: [" + ",".join(["*x"] * 150) + "]\n",
     ["line 6 column", "more than 100 YAML aliases", "alias bomb"]),
    ("alias-expansion", SERVERS + "x: &x [" + ",".join(["a"] * 3000) + "]\ny: ["
     + ",".join(["*x"] * 60) + "]\n", ["expands to more than 100000 values"]),
    ("recursive-alias", "servers: &a\n  main: *a\n", ["alias refers to itself"]),
    ("recursive-list", "a: &a [*a]\n", ["alias refers to itself"]),
    ("deep-nesting-flow", DEEP, ["nested too deeply"]),
    ("deep-nesting-maps", DEEP_MAPS, ["campaigns.c1: unknown key 'k0'"]),
    ("latin1", (SERVERS + "dnc_lists:\n  global: {description: 'Liste g\xe9n\xe9rale'}\n")
     .encode("latin-1"), ["line 6", "byte 0xe9 is not valid UTF-8", "save the file as UTF-8"]),
    ("utf16", SERVERS.encode("utf-16"), ["byte offset 0", "not valid UTF-8"]),
    ("nul-byte", b"servers:\n  main:\x00\n", ["line 2: character '\\x00' is not allowed"]),
    ("escape-char", SERVERS + "x: \x1b[2J\n", ["line 5: character '\\x1b' is not allowed"]),
    ("two-megabytes", "# " + "x" * 2_000_000 + "\n", ["larger than 1000000 bytes"]),
    ("tab-indentation", "servers:\n\tmain:\n\t\tdial_template: x\n",
     ["line 2 column 1", "invalid YAML", "fix the syntax there"]),
    ("unclosed-quote", SERVERS + 'dnc_lists: {global: {description: "x}}\n', ["invalid YAML"]),
    ("duplicate-key", SERVERS + "campaigns:\n  c1: {}\n  c1: {}\n",
     ["line 7 column 3", "duplicate key 'c1'"]),
    ("duplicate-nested-key", server(dial_template='"PJSIP/{number}@a"\n    dial_template: '
                                    '"PJSIP/{number}@b"'), ["duplicate key 'dial_template'"]),
    ("python-object-apply", SERVERS + "x: !!python/object/apply:os.system ['touch pwned']\n",
     ["invalid YAML", "python/object/apply:os.system"]),
    ("python-object", SERVERS + "x: !!python/object:collections.OrderedDict {}\n",
     ["invalid YAML"]),
    ("python-name", SERVERS + "x: !!python/name:os.system\n", ["invalid YAML"]),
    ("unknown-local-tag", SERVERS + "x: !Ref main\n", ["invalid YAML"]),
    ("binary-secret", server(ami="{username: u, secret: !!binary c2VjcmV0}"),
     ["servers.main.ami.secret must be a non-empty string", "value not shown"]),
    ("dial-ampersand", server(dial_template='"PJSIP/{number}@trunk&SIP/evil"'),
     ["servers.main.dial_template must not contain '&'"]),
    ("dial-comma-options", server(dial_template='"PJSIP/{number}@trunk,30,D(1)"'),
     ["must not contain ','"]),
    ("dial-dollar", server(dial_template='"PJSIP/{number}@${EVIL}"'),
     ["must not contain '$'"]),
    ("dial-space", server(dial_template='"PJSIP/{number}@trunk x"'), ["must not contain ' '"]),
    ("dial-newline", server(dial_template='"PJSIP/{number}@trunk\\nSIP/x"'),
     ["must not contain '\\n'"]),
    ("dial-attribute", server(dial_template='"PJSIP/{number.__class__}@trunk"'),
     ["unknown placeholder {number.__class__}"]),
    ("dial-positional", server(dial_template='"PJSIP/{0}@trunk"'), ["unknown placeholder {0}"]),
    ("dial-conversion", server(dial_template='"PJSIP/{number!r}@trunk"'),
     ["unknown placeholder {number!r}"]),
    ("dial-no-placeholder", server(dial_template='"PJSIP/2025550123@trunk"'),
     ["must contain {number} or {national}"]),
    ("dial-number-type", server(dial_template="12345"), ["must be a string"]),
    ("callerid-newline", camp(caller_id='"\\"x\\" <1>\\nAction: Originate"'),
     ["campaigns.c1.caller_id must not contain '\\n'"]),
    ("callerid-comma", camp(caller_id='"x, y <1>"'), ["must not contain ','"]),
    ("callerid-too-long", camp(caller_id="'%s'" % ("9" * 90)), ["at most 80 characters"]),
    ("callerid-garbage", camp(caller_id="'<script>'"), ["must look like"]),
    ("sounds-traversal", camp(on_connect="{type: message, sounds: [../../../etc/passwd]}"),
     ["campaigns.c1.on_connect.sounds[0]", "no '..'"]),
    ("sounds-quote", camp(on_connect="{type: message, sounds: ['hello\" \"x']}"),
     ["on_connect.sounds[0] must be a sound file name"]),
    ("sounds-empty-list", camp(on_connect="{type: message, sounds: []}"),
     ["on_connect.sounds must be a non-empty list"]),
    ("extension-options", camp(on_connect="{type: extension, extension: '1000,30,D(1)'}"),
     ["on_connect.extension must be an extension"]),
    ("queue-injection", camp(on_connect="{type: queue, queue: 'sales,t,,,1'}"),
     ["on_connect.queue must be letters"]),
    ("room-traversal", camp(on_connect="{type: conference, room: ../x}"),
     ["on_connect.room must be letters"]),
    ("on-connect-type", camp(on_connect="{type: shell}"),
     ["on_connect.type must be one of message, extension, queue, conference"]),
    ("secret-newline", server(ami='{username: u, secret: "a\\nAction: Originate"}'),
     ["servers.main.ami.secret must be a non-empty string without newlines", "value not shown"]),
    ("username-injection", server(ami='{username: "u\\r\\nSecret: x", secret: s}'),
     ["servers.main.ami.username must be letters"]),
    ("agi-url-path", server(agi_url="agi://127.0.0.1:4573/evil"),
     ["servers.main.agi_url must look like agi://HOST[:PORT] with no path"]),
    ("database-scheme", SERVERS + "database: {url: 'mysql://root:hunter2@db/x'}\n",
     ["database.url must start with sqlite:/// or postgresql://", "root:***@db"]),
    ("database-bad-port", SERVERS + "database: {url: 'postgresql://u:pw@h:99x/db'}\n",
     ["database.url is not a valid PostgreSQL URL"]),
    ("timezone-traversal", camp(timezone="../../../etc/passwd"),
     ["campaigns.c1.timezone must be an IANA time zone name"]),
    ("region-lowercase", camp(region="us"), ["campaigns.c1.region", "did you mean 'US'"]),
    ("week-time-garbage", camp(type="scheduled", start="2026-12-01T09:00",
                               end="2026-12-02T09:00", week_time="'mon-fri 25:00-99:00'"),
     ["campaigns.c1.week_time"]),
    ("campaign-name-unicode", SERVERS + "campaigns:\n  'c\u00e9 1': {}\n",
     ["campaigns: name 'c\u00e9 1' must be 1-64 letters"]),
    ("server-name-traversal", SERVERS.replace("main:", "'../main':"),
     ["servers: name '../main' must be"]),
    ("missing-server-ref", camp(server="other"),
     ["campaigns.c1.server 'other' is not defined under servers (defined: main)"]),
    ("missing-dnc-ref", camp(dnc_lists="[nope]"),
     ["campaigns.c1.dnc_lists[0] 'nope' is not defined under dnc_lists (defined: global)"]),
]


@pytest.mark.parametrize("content,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_yaml_refused_with_path_and_key(work, content, expected):
    path = work / "config.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    message = str(err.value)
    assert message.startswith(str(path) + ": "), message
    for part in expected:
        assert part in message, message
    assert all(line.startswith("  ") for line in message.splitlines()[1:]) and len(message) < 2000, message
    assert "s3cret" not in message and "hunter2" not in message and "pw@" not in message
    assert files_in(work) == {"config.yaml"}       # nothing written (e.g. no 'pwned', no db)


def test_hostile_yaml_config_path_is_a_directory(work):
    with pytest.raises(ConfigError, match=r"work: cannot read the configuration file: Is a "
                                          r"directory; check the path"):
        load_config(str(work))


def test_hostile_yaml_unset_secret_env_is_named(work, monkeypatch):
    monkeypatch.delenv("ACAMP_HOSTILE_UNSET", raising=False)
    path = work / "config.yaml"
    path.write_text(server(ami="{username: u, secret_env: ACAMP_HOSTILE_UNSET}"))
    with pytest.raises(ConfigError, match="environment variable ACAMP_HOSTILE_UNSET is not set"):
        load_config(str(path))


def test_hostile_yaml_secret_env_with_newline_not_echoed(work, monkeypatch):
    monkeypatch.setenv("ACAMP_HOSTILE_SECRET", "abc\r\nAction: Originate")
    path = work / "config.yaml"
    path.write_text(server(ami="{username: u, secret_env: ACAMP_HOSTILE_SECRET}"))
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert "environment variable ACAMP_HOSTILE_SECRET" in str(err.value)
    assert "Originate" not in str(err.value) and "abc" not in str(err.value)


def test_hostile_yaml_merge_keys_still_checked(work):
    path = work / "config.yaml"
    path.write_text(SERVERS + "campaigns:\n  base: &base {caller_id: '12025550100', type: on_demand, "
                    "on_connect: {type: message, sounds: [a]}, evil: 1}\n  c1: {<<: *base}\n")
    with pytest.raises(ConfigError, match="campaigns.base: unknown key 'evil'"):
        load_config(str(path))
    assert os.listdir(work) == ["config.yaml"]
