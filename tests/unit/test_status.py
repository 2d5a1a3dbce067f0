import datetime as dt

from agi_campaign import campaigns
from agi_campaign.claim import claim_due
from agi_campaign.clock import to_db
from agi_campaign.models import Campaign, Number
from agi_campaign.status import render, status

from tests.unit.support import T0, campaign_config, make_numbers


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
    cfg = campaign_config()
    campaigns.sync_campaigns(cfg, T0)
    make_numbers(row(), 1)
    later = T0 + dt.timedelta(minutes=5)
    Number.update(next_attempt_at=to_db(later)).execute()
    campaigns.move(row(), "running", "test", T0)
    assert status(cfg, T0)[0]["reason"] == "no due numbers until %s" % later.isoformat()


def test_status_scheduled_outside_window(db):
    cfg = campaign_config(type="scheduled", start="2026-11-01T00:00", end="2027-01-01T00:00",
                          week_time="mon-fri 09:00-17:00", timezone="UTC")
    campaigns.sync_campaigns(cfg, T0)
    saturday = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc)
    assert status(cfg, saturday)[0]["reason"] == "outside window until 2026-12-07T09:00:00+00:00"
