"""What a live reload changes (agi_campaign.reloadplan): campaigns added, changed, removed; keys
that need a restart keep their running value; a campaign on a new server refuses the file."""
import pytest

from agi_campaign.config import parse_config
from agi_campaign.errors import ConfigError
from agi_campaign.reloadplan import plan

from tests.unit.support import CAMPAIGN, SERVER


def config(campaigns, servers=None, **sections):
    data = {"servers": servers or {"main": SERVER}, "dnc_lists": {"global": {}},
            "service": {"tick_ms": 200}, "fastagi": {"port": 4573},
            "campaigns": {name: dict(CAMPAIGN, **kw) for name, kw in campaigns.items()}}
    data.update(sections)
    return parse_config(data, "c.yaml")


def test_reload_plan_adds_changes_and_pauses_campaigns():
    running = config({"a": {"max_channels": 2}, "c": {}, "same": {}})
    new = config({"a": {"max_channels": 5}, "b": {}, "same": {}})
    p = plan(running, new)
    assert (p.added, p.changed, p.removed, p.kept) == (("b",), ("a",), ("c",), ())
    assert p.summary() == "campaigns added: b; changed: a; paused: c"
    assert p.config.campaigns["a"].max_channels == 5 and set(p.config.campaigns) == {
        "a", "b", "same"}


def test_reload_plan_changed_hours_retry_and_destination_count_as_changes():
    running = config({"a": {}})
    for change in ({"callee_hours": "mon-fri 09:00-17:00"}, {"delay_ms": 300},
                   {"retry": {"busy": {"delay_s": 5, "max": 1}}}, {"amd": {"action": "hangup"}},
                   {"on_connect": {"type": "queue", "queue": "sales"}}):
        p = plan(running, config({"a": change}))
        assert p.changed == ("a",), change
    assert plan(running, config({"a": {}})).summary() == "no campaign changed"


def test_reload_plan_keeps_restart_only_keys_and_names_them():
    running = config({"a": {}})
    moved = dict(SERVER, ami=dict(SERVER["ami"], host="10.0.0.9"),
                 dial_template="PJSIP/{number}@other")
    new = config({"a": {"max_channels": 4}}, servers={"main": moved},
                 service={"tick_ms": 500}, fastagi={"port": 4999},
                 database={"url": "sqlite:////tmp/other.db"})
    p = plan(running, new)
    assert p.kept == ("database", "fastagi.port", "service.tick_ms", "servers.main.ami")
    assert p.config.database == running.database and p.config.fastagi == running.fastagi
    assert p.config.service.tick_ms == 200
    main = p.config.servers["main"]
    assert main.ami_host == running.servers["main"].ami_host          # the live connection
    assert main.dial_template == "PJSIP/{number}@other"               # applies at once
    assert p.summary() == ("campaigns changed: a; kept until a restart (agi-campaign run): "
                           "database, fastagi.port, service.tick_ms, servers.main.ami")


def test_reload_plan_refuses_a_campaign_on_a_server_added_by_the_file():
    running = config({"a": {}})
    new = config({"a": {"server": "main"}, "b": {"server": "west"}},
                 servers={"main": SERVER, "west": SERVER})
    with pytest.raises(ConfigError) as err:
        plan(running, new)
    assert str(err.value) == ("c.yaml: campaigns.b.server: server 'west' is new in this file; a "
                              "new server needs a restart (agi-campaign run); the running "
                              "config stays")
    p = plan(running, config({"a": {"server": "main"}}, servers={"main": SERVER, "west": SERVER}))
    assert p.kept == ("servers.west (added)",) and set(p.config.servers) == {"main"}
