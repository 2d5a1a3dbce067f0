"""What a live reload changes (agi_campaign.reloadplan): campaigns added, changed, removed; keys
that need a restart keep their running value; a campaign on a new server refuses the file; and
Service.reload applying it (or keeping the running config)."""
import peewee
import pytest
import yaml
from apscheduler.schedulers.background import BackgroundScheduler

from agi_campaign import campaigns, heartbeat
from agi_campaign.config import load_config, parse_config
from agi_campaign.engine import Engine
from agi_campaign.errors import ConfigError
from agi_campaign.heartbeat import Heartbeat
from agi_campaign.models import Campaign
from agi_campaign.reloadplan import plan
from agi_campaign.service import Service

from tests.unit.support import CAMPAIGN, SERVER, T0, FakeAmi, FakeClock


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


def write_config(path, campaigns):
    data = {"servers": {"main": SERVER}, "dnc_lists": {"global": {}},
            "service": {"tick_ms": 200},
            "campaigns": {name: dict(CAMPAIGN, **kw) for name, kw in campaigns.items()}}
    path.write_text(yaml.safe_dump(data))
    return load_config(str(path))


def wired_service(config, clock):
    """A Service wired by hand: engine on a FakeAmi, a scheduler (not started) holding a dial
    job per campaign, a heartbeat row."""
    service = Service(config, clock=clock)
    service.engine = Engine(config, clock, {"main": FakeAmi()}, None, instance="t")
    service.scheduler = BackgroundScheduler()
    for name in config.campaigns:
        service.scheduler.add_job(print, "interval", seconds=1, id="dial:" + name)
    service.heartbeat = Heartbeat("t", 200, host="h", pid=1)
    service.heartbeat.start(T0)
    return service


def test_service_reload_applies_the_plan_or_keeps_the_running_config(db, tmp_path):
    """Service.reload on a service wired by hand (engine on a FakeAmi, scheduler not started):
    jobs, pacers, rules, states and the heartbeat's record follow the file."""
    path = tmp_path / "c.yaml"
    config = write_config(path, {"a": {"max_channels": 2}, "c": {}})
    clock = FakeClock(T0)
    campaigns.sync_campaigns(config, T0)
    campaigns.apply_command("c", "start", T0)
    service = wired_service(config, clock)

    path.write_text(path.read_text().replace("max_channels: 2", "max_channels: 0"))
    ok, text = service.reload()
    assert not ok and text.startswith("%s: campaigns.a.max_channels must be" % path)
    assert service.config is config and service.engine.config is config
    assert heartbeat.read(T0)["reload"] == {"at": T0, "ok": False, "text": text}

    write_config(path, {"a": {"max_channels": 5}, "b": {"retry_delay_s": 7}})
    assert service.reload() == (True, "campaigns added: b; changed: a; paused: c")
    assert service.engine.config.campaigns["a"].max_channels == 5
    assert sorted(job.id for job in service.scheduler.get_jobs()) == ["dial:a", "dial:b"]
    assert "b" in service.engine.pacers and service._policy_for("b").retry_delay_s == 7
    assert service._policy_for("c").retry_delay_s == 60          # its last rules
    assert service._on_connect_for("c").sounds == ("hello-world",)
    assert {r.name: r.state for r in Campaign.select()} == {
        "a": "ready", "b": "ready", "c": "paused"}
    assert campaigns.history(Campaign.get(Campaign.name == "c"), 1)[0].cause == \
        "removed from the config"


def test_reload_plan_keeps_the_http_section_until_a_restart(monkeypatch):
    monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", "old-token-0123456789")
    running = config({"a": {}}, http={"port": 8080})
    monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", "new-token-0123456789")
    p = plan(running, config({"a": {}}, http={"port": 8081}))
    assert p.kept == ("http",) and p.config.http is running.http
    assert p.config.http.token == "old-token-0123456789"      # what the server checks


def test_service_reload_refused_by_the_database_keeps_the_config(db, tmp_path, monkeypatch):
    """A reload whose database writes fail (SQLite locked by an import, PostgreSQL restarting)
    applies nothing, records the refusal, and leaves the service running; a removed campaign
    keeps its webhook so the results of its calls in flight still get their events."""
    monkeypatch.setenv("HOOK_SECRET", "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
    path = tmp_path / "c.yaml"
    hook = {"url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET"}
    config = write_config(path, {"a": {"webhook": hook}, "c": {}})
    clock = FakeClock(T0)
    campaigns.sync_campaigns(config, T0)
    service = wired_service(config, clock)

    write_config(path, {"c": {}})

    def locked(*args, **kwargs):
        raise peewee.OperationalError("database is locked")
    monkeypatch.setattr(campaigns, "sync_campaigns", locked)
    ok, text = service.reload()
    assert not ok and text.startswith("reload not applied: the database refused its writes "
                                      "(database is locked); the running config stays")
    assert service.config is config and sorted(j.id for j in service.scheduler.get_jobs()) \
        == ["dial:a", "dial:c"]
    assert heartbeat.read(T0)["reload"]["ok"] is False

    monkeypatch.undo()
    monkeypatch.setenv("HOOK_SECRET", "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
    assert service.reload() == (True, "campaigns paused: a")
    assert service._webhook_for("a").url == "http://127.0.0.1:9/hook"   # its last webhook
