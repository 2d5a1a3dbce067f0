"""The service heartbeat: the staleness rule (time passed in), the row's life, the lines
`status` prints, and times shown in a campaign's zone (clock.show_time)."""
import datetime as dt

from agi_campaign import campaigns, heartbeat
from agi_campaign.clock import show_time
from agi_campaign.heartbeat import Heartbeat, is_live, stale_after_s
from agi_campaign.models import ServiceHeartbeat
from agi_campaign.status import render, status

from tests.unit.support import T0, campaign_config

S = dt.timedelta(seconds=1)


def test_heartbeat_staleness_rule_is_max_of_5_s_and_10_ticks():
    assert stale_after_s(100) == 5.0 and stale_after_s(200) == 5.0
    assert stale_after_s(1000) == 10.0
    assert is_live(None, T0, 200, T0 + 5 * S)
    assert not is_live(None, T0, 200, T0 + 5.1 * S)
    assert is_live(None, T0, 1000, T0 + 9 * S) and not is_live(None, T0, 1000, T0 + 11 * S)
    assert not is_live(T0, T0, 200, T0)              # stopped: never live
    assert not is_live(None, None, 200, T0)


def test_heartbeat_row_lives_beats_and_stops(db):
    assert heartbeat.read(T0) is None
    assert heartbeat.line(None) == ("service not running (never seen on this database); start "
                                    "it: agi-campaign run")
    beat = Heartbeat("inst1", 200, host="node1", pid=4242, version="9.9")
    beat.start(T0)
    info = heartbeat.read(T0 + 0.5 * S)
    assert info["running"] and not info["ticking"] and info["last_tick"] is None
    assert heartbeat.line(info) == "service running on node1 pid 4242, starting (no tick yet)"
    beat.beat(T0 + 2 * S, T0 + 1.8 * S)
    info = heartbeat.read(T0 + 2 * S)
    assert (info["host"], info["pid"], info["instance"], info["version"]) == (
        "node1", 4242, "inst1", "9.9")
    assert heartbeat.line(info) == "service running on node1 pid 4242, last tick 0.2 s ago"
    beat.beat(T0 + 4 * S, T0 + 1.8 * S)              # beats, but the scheduler is stuck
    info = heartbeat.read(T0 + 9 * S)
    assert info["running"] and not info["ticking"]
    assert heartbeat.line(info) == ("service running on node1 pid 4242, but its scheduler has "
                                    "not ticked for 7 s")
    info = heartbeat.read(T0 + 10 * S)               # 6 s without a beat: not running
    assert not info["running"]
    assert heartbeat.line(info, "America/New_York") == (
        "service not running (last seen 2026-12-01 04:00:04 -05:00 on node1 pid 4242); start "
        "it: agi-campaign run")
    beat.record_reload(T0 + 3 * S, False, "c.yaml: campaigns.a.max_channels must be ...")
    assert heartbeat.reload_line(heartbeat.read(T0)) == (
        "last reload 2026-12-01 09:00:03 +00:00: refused: c.yaml: campaigns.a.max_channels "
        "must be ...")
    beat.stop(T0 + 5 * S)
    info = heartbeat.read(T0 + 5 * S)
    assert not info["running"] and info["stopped_at"] == T0 + 5 * S
    assert heartbeat.line(info).startswith("service not running (last seen 2026-12-01 "
                                           "09:00:05 +00:00 on node1 pid 4242, stopped)")
    shown = heartbeat.as_json(info, "Asia/Kolkata")
    assert shown["stopped_at"] == "2026-12-01T14:30:05+05:30" and shown["running"] is False
    assert shown["reload"]["at"] == "2026-12-01T14:30:03+05:30" and not shown["reload"]["ok"]


def test_heartbeat_start_clears_dead_rows_and_keeps_live_ones(db):
    Heartbeat("a", 200, host="old", pid=1).start(T0)                 # will be stale
    Heartbeat("a", 200, host="other", pid=2).start(T0 + 8 * S)       # live at T0 + 10 s
    stopped = Heartbeat("a", 200, host="gone", pid=3)
    stopped.start(T0 + 9 * S)
    stopped.stop(T0 + 9 * S)
    Heartbeat("a", 200, host="me", pid=7).start(T0 + 9 * S)          # my own old row
    Heartbeat("a", 200, host="me", pid=7).start(T0 + 10 * S)
    rows = sorted((r.host, r.pid) for r in ServiceHeartbeat.select())
    assert rows == [("me", 7), ("other", 2)]
    assert heartbeat.read(T0 + 10 * S)["host"] == "me"               # the one beating last


def test_status_reasons_say_to_start_the_service_when_none_runs(db):
    cfg = campaign_config()
    campaigns.sync_campaigns(cfg, T0)
    campaigns.apply_command("c1", "start", T0)
    (row,) = status(cfg, T0)
    assert row["reason"] == "start requested; start the service: agi-campaign run"
    beat = Heartbeat("i", 1000, host="h", pid=5)
    beat.start(T0)
    beat.beat(T0, T0)
    (row,) = status(cfg, T0 + S)
    assert row["reason"] == "start requested; the service picks it up within a second"
    lines = render([row], ["service running on h pid 5, last tick 1.0 s ago"]).splitlines()
    assert lines[0] == "service running on h pid 5, last tick 1.0 s ago"
    assert lines[1].startswith("c1 [on_demand, main] STARTNOW since 2026-12-01 09:00:00 +00:00")


def test_show_time_in_a_zone_with_offset_to_the_second():
    t = dt.datetime(2026, 11, 26, 18, 5, 2, 987654, tzinfo=dt.timezone.utc)
    assert show_time(t, "America/New_York") == "2026-11-26 13:05:02 -05:00"
    assert show_time(t, "America/New_York", iso=True) == "2026-11-26T13:05:02-05:00"
    assert show_time(t.replace(tzinfo=None)) == "2026-11-26 18:05:02 +00:00"  # stored: UTC
    assert show_time(t.replace(month=7), "America/New_York") == "2026-07-26 14:05:02 -04:00"
    assert show_time(t, "Asia/Kolkata", iso=True) == "2026-11-26T23:35:02+05:30"
    assert show_time(None, "UTC") is None


def test_heartbeat_nodes_live_ids_other_instance_refused_and_row_written_again(db, db_url):
    import pytest

    from agi_campaign.errors import StartupError

    one = Heartbeat("inst1", 200, host="h1", pid=1)
    two = Heartbeat("inst1", 200, host="h2", pid=2)
    one.start(T0)
    two.start(T0)
    assert heartbeat.live_ids(T0 + S) == {one.row_id, two.row_id}
    if db_url.startswith("postgresql"):
        with pytest.raises(StartupError, match="nodes sharing a database must have the same "
                                               "instance"):
            Heartbeat("other", 200, host="h3", pid=3).start(T0 + S)
    # SQLite runs one node (its file lock): rows left by another instance are a dead run's
    one.beat(T0 + 4 * S, T0 + 4 * S)
    assert heartbeat.live_ids(T0 + 6 * S) == {one.row_id}  # two stopped beating: gone
    if db_url.startswith("sqlite"):
        return  # SQLite reuses a deleted row's id; it runs one node only (ServiceLock)
    three = Heartbeat("inst1", 200, host="h3", pid=3)
    three.start(T0 + 6 * S)                                  # deletes the gone row of two
    assert ServiceHeartbeat.get_or_none(ServiceHeartbeat.id == two.row_id) is None
    two.beat(T0 + 7 * S, T0 + 7 * S)                         # back: its row is written again
    assert heartbeat.live_ids(T0 + 7 * S) == {one.row_id, two.row_id, three.row_id}
    infos = {i["node"]: i for i in heartbeat.read_all(T0 + 7 * S)}
    assert (infos[two.row_id]["host"], infos[two.row_id]["pid"]) == ("h2", 2)


def test_heartbeat_status_lists_nodes_with_their_calls_in_flight(db, db_url):
    from agi_campaign.claim import claim_due
    from agi_campaign.status import node_lines, nodes

    from tests.unit.support import make_campaign, make_numbers

    one, two = Heartbeat("i", 200, host="h1", pid=1), Heartbeat("i", 200, host="h2", pid=2)
    one.start(T0)
    two.start(T0)
    camp = make_campaign("c1", state="running")
    make_numbers(camp, 5)
    claim_due(camp.id, 3, T0, "main", (), 3, node=one.row_id)
    claim_due(camp.id, 1, T0, "main", (), 3, node=two.row_id)
    one.beat(T0 + 6 * S, T0 + 6 * S)
    from agi_campaign import lease
    if db_url.startswith("sqlite"):   # PostgreSQL's lease is on its own clock, not T0's
        lease.claim("webhooks:%d" % camp.id, one.row_id, 30, T0 + 6 * S)
    infos = nodes(T0 + 6 * S)
    assert [(i["node"], i["running"], i["calls_in_flight"], i["campaigns"]) for i in infos] == [
        (one.row_id, True, 3, {"c1": 3}), (two.row_id, False, 1, {"c1": 1})]
    assert [i["webhooks"] for i in infos] == ([["c1"], []] if db_url.startswith("sqlite")
                                              else [[], []])
    lines = node_lines(infos, "UTC")
    assert lines[0] == "nodes: 1 live of 2 seen on this database"
    assert lines[1].startswith("  node %d on h1 pid 1: live, last heartbeat " % one.row_id)
    assert lines[1].endswith("calls in flight 3 (c1 3)" + (
        "; delivers webhooks of c1" if db_url.startswith("sqlite") else ""))
    assert "GONE (its calls are taken over)" in lines[2] and lines[2].endswith("(c1 1)")
    assert node_lines(infos[:1], "UTC") == []   # one node: the service line says it all
