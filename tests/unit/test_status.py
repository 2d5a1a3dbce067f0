import datetime as dt
import json

from agi_campaign import campaigns, dnc, numbers
from agi_campaign.claim import claim_due
from agi_campaign.clock import to_db
from agi_campaign.config import parse_config
from agi_campaign.models import Campaign, Number
from agi_campaign.status import blocked_count, number_counts, render, status

from tests.unit.support import CAMPAIGN, SERVER, T0, campaign_config, make_numbers, phone


def row():
    return Campaign.get(Campaign.name == "c1")


def test_status_reasons_follow_the_campaign(db):
    cfg = campaign_config(max_channels=2)
    campaigns.sync_campaigns(cfg, T0)
    make_numbers(row(), 3)
    info = status(cfg, T0)[0]
    assert info["state"] == "READY" and "waiting for start" in info["reason"]
    assert info["numbers"]["pending"] == 3 and info["numbers"]["total"] == 3
    campaigns.apply_command("c1", "start", T0)
    campaigns.move(row(), "running", "test", T0)
    assert status(cfg, T0)[0]["reason"] == "dialing"
    claim_due(row().id, 2, T0, "main", (), 3)
    info = status(cfg, T0)[0]
    assert info["reason"] == "no free channel (2 of 2 in use)" and info["in_flight"] == 2
    assert info["numbers"]["in_flight"] == 2 and info["attempts"] == 2
    campaigns.apply_command("c1", "pause", T0)
    assert status(cfg, T0)[0]["reason"].startswith("paused")
    assert "c1 [on_demand, main] PAUSED" in render(status(cfg, T0))


def test_status_no_due_numbers_until(db):
    cfg = campaign_config(timezone="America/New_York")
    campaigns.sync_campaigns(cfg, T0)
    make_numbers(row(), 1)
    later = T0 + dt.timedelta(minutes=5)
    Number.update(next_attempt_at=to_db(later)).execute()
    campaigns.move(row(), "running", "test", T0)
    assert status(cfg, T0)[0]["reason"] == "no due numbers until 2026-12-01 04:05:00 -05:00"


def test_status_scheduled_outside_window(db):
    cfg = campaign_config(type="scheduled", start="2026-11-01T00:00", end="2027-01-01T00:00",
                          week_time="mon-fri 09:00-17:00", timezone="Asia/Kolkata")
    campaigns.sync_campaigns(cfg, T0)
    saturday = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc)
    assert status(cfg, saturday)[0]["reason"] == "outside window until 2026-12-07 09:00:00 +05:30"


# ---- blocked (pending numbers now on a DNC list) and removed ---------------------------------

def blocked_setup(lists=("global", "extra")):
    cfg = parse_config({
        "servers": {"main": SERVER}, "dnc_lists": {name: {} for name in lists + ("other",)},
        "campaigns": {"c1": dict(CAMPAIGN, dnc_lists=list(lists))}}, "test.yaml")
    campaigns.sync_campaigns(cfg, T0)
    make_numbers(row(), 6)
    return cfg, list(lists) + ["other"]


def test_status_counts_numbers_blocked_by_a_dnc_add_after_import(db):
    cfg, known = blocked_setup()
    info = status(cfg, T0)[0]["numbers"]
    assert (info["pending"], info["blocked"], info["dnc"], info["removed"]) == (6, 0, 0, 0)
    dnc.add("global", [phone(0), phone(1), phone(5)], "US", T0, "test", known_lists=known)
    dnc.add("extra", [phone(1), phone(2)], "US", T0, "test", known_lists=known)  # 1: both lists
    dnc.add("other", [phone(3)], "US", T0, "test", known_lists=known)   # not this campaign's
    Number.update(status="done").where(Number.phone == phone(5)).execute()   # not pending
    info = status(cfg, T0)[0]["numbers"]
    assert (info["pending"], info["blocked"], info["done"], info["total"]) == (5, 3, 1, 6)
    line = render(status(cfg, T0)).splitlines()[1]
    assert line.startswith("  numbers 6: pending 5 (3 blocked by DNC), in flight 0, done 1, "
                           "failed 0, dnc 0, removed 0;")
    # the claim reaches them: blocked numbers become dnc, never dialed
    campaigns.apply_command("c1", "start", T0)
    campaigns.move(row(), "running", "test", T0)
    claimed = claim_due(row().id, 10, T0, "main", cfg.campaigns["c1"].dnc_lists, 3)
    assert {c.phone for c in claimed} == {phone(3), phone(4)}
    info = status(cfg, T0)[0]["numbers"]
    assert (info["pending"], info["blocked"], info["dnc"], info["in_flight"]) == (0, 0, 3, 2)


def test_status_blocked_count_same_from_either_side(db):
    _, known = blocked_setup()
    dnc.add("global", [phone(0), phone(1)], "US", T0, "test", known_lists=known)
    dnc.add("extra", [phone(1), "+12025550199"], "US", T0, "test", known_lists=known)
    pending = number_counts(row().id)["pending"]
    lists = ["global", "extra"]
    # `pending` decides which side the SQLite query walks: 6 pending > 3 entries (from the
    # entries), or said to be 1 (from the numbers); PostgreSQL's planner picks its own
    assert blocked_count(row().id, lists, pending) == 2
    assert blocked_count(row().id, lists, 1) == 2
    assert blocked_count(row().id, [], pending) == 0
    assert blocked_count(row().id, lists, 0) == 0


def test_status_removed_numbers_and_no_blocked_line_when_none(db):
    cfg, known = blocked_setup()
    numbers.remove(row().id, [phone(0), phone(1)], "US", T0)
    dnc.add("global", [phone(0)], "US", T0, "test", known_lists=known)   # removed: not blocked
    info = status(cfg, T0)[0]["numbers"]
    assert (info["pending"], info["removed"], info["blocked"], info["total"]) == (4, 2, 0, 6)
    assert "pending 4, in flight 0, done 0, failed 0, dnc 0, removed 2;" in render(
        status(cfg, T0))
    assert json.loads(json.dumps(status(cfg, T0)))[0]["numbers"]["removed"] == 2


def test_status_campaign_not_in_config_has_no_blocked(db):
    cfg, known = blocked_setup()
    dnc.add("global", [phone(0)], "US", T0, "test", known_lists=known)
    other = campaign_config()        # c1 with the support config: dnc_lists [global]
    assert status(other, T0)[0]["numbers"]["blocked"] == 1
    empty = parse_config({"servers": {"main": SERVER}, "dnc_lists": {"global": {}},
                          "campaigns": {}}, "test.yaml")
    info = status(empty, T0)[0]
    assert info["reason"] == "not in the config file" and info["numbers"]["blocked"] == 0


def test_status_says_when_the_server_limit_holds_a_campaign(db):
    from agi_campaign.claim import claim_gated
    from agi_campaign.gate import Limits

    cfg = campaign_config(max_channels=5)
    campaigns.sync_campaigns(cfg, T0)
    make_numbers(row(), 4)
    campaigns.apply_command("c1", "start", T0)
    campaigns.move(row(), "running", "test", T0)
    limits = Limits(row().id, 5, 0, "main", server_max_channels=1)
    assert len(claim_gated(limits, 5, lambda: T0, (), 3)[0]) == 1
    assert claim_gated(limits, 5, lambda: T0, (), 3)[1].limited_by == "server max_channels"
    assert status(cfg, T0)[0]["reason"] == ("waiting for server main: its max_channels 1 are in "
                                           "use (1 call(s) of this campaign in flight)")
    later = T0 + dt.timedelta(seconds=11)  # no claim since: the block is no longer shown
    assert status(cfg, later)[0]["reason"] == "dialing"
