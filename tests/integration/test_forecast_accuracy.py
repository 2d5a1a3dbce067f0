"""The completion forecast against a real run (issue 13): a 300-number campaign on the real
Asterisk 22 sandbox with mixed outcomes and retries; the forecast the API gives once 20 % of
the numbers are settled must name the finish within 20 % of the time that was still to run."""
import datetime as dt
import random

import httpx

from agi_campaign import campaigns
from agi_campaign.clock import SystemClock, from_db
from agi_campaign.models import Campaign, StateChange
from agi_campaign.testing import harness
from agi_campaign.testing.sandbox import free_port

from tests.integration.support import (campaign, check_invariants, destinations_recorded, load,
                                       state, wait_for)

TOKEN = "f" * 32
# Behaviours (harness.callee_number) and their weights; answering callees hold 2..4 s.
MIX = [("answer", 65), ("busy", 12), ("noanswer", 5), ("congestion", 10), ("unavailable", 8)]
SETTLED = ("done", "failed", "dnc")


def plan(count, seed):
    rng = random.Random(seed)
    kinds = [k for k, w in MIX for _ in range(w)]
    return {harness.callee_number(3000 + i, kind, hold_s=rng.randint(2, 4)): kind
            for i, kind in ((i, rng.choice(kinds)) for i in range(count))}


def test_forecast_at_20_percent_names_the_finish_within_20_percent(
        dialer, asterisk, tmp_path, monkeypatch):
    """Forecast moment F: the first API read (GET /api/v1/campaigns/NAME, every 0.25 s) whose
    counts show at least 20 % of the numbers settled (done, failed or dnc). Predicted finish P:
    that read's ``forecast.finishes_at``. Actual finish A: when the campaign became COMPLETED
    (its recorded state change). Asserted: |P - A| <= 0.20 * (A - F), the error within 20 % of
    the time that was still to run at F.

    What decides the finish is what the model knows: call durations set by the sandbox's
    callees (answers hold 2-4 s while the message, 10 s of silence, plays; noanswer rings
    dial_timeout_s = 5 s), max_channels (30, full for most of the run) and the retries (busy:
    5 s apart, up to max_attempts = 3; noanswer: once more after retry_delay_s = 3 s;
    congestion and unavailable: final at once), not the machine's speed: about 400 attempts,
    the last ones retries, in about 35 s."""
    monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", TOKEN)
    numbers = plan(300, seed=13)
    max_channels, max_attempts = 30, 3
    cfg = campaign(max_channels=max_channels, delay_ms=20, max_attempts=max_attempts,
                   retry_delay_s=3, dial_timeout_s=5,
                   on_connect={"type": "message", "sounds": ["silence/10"]},
                   retry={"busy": {"delay_s": 5}, "noanswer": {"max": 1}, "congestion": {"max": 0},
                          "unavailable": {"max": 0}})
    port = free_port()
    api = "http://127.0.0.1:%d/api/v1/campaigns/mixed" % port
    headers = {"Authorization": "Bearer " + TOKEN}
    reads = []
    with harness.ChannelMonitor(asterisk) as mon:
        dialer.start({"mixed": cfg}, {"main": asterisk},
                     http={"host": "127.0.0.1", "port": port})
        load("mixed", list(numbers), tmp_path)
        began = SystemClock().now()
        campaigns.apply_command("mixed", "start", began)

        def settled_fifth():
            body = httpx.get(api, headers=headers, timeout=10).json()
            reads.append((SystemClock().now(), body))
            return sum(body["numbers"][s] for s in SETTLED) >= len(numbers) // 5
        wait_for(settled_fifth, 60, step=0.25)
        at, body = reads[-1]
        wait_for(lambda: state("mixed") == "completed", 120, step=0.5)
        wait_for(lambda: destinations_recorded("mixed"), 30)
        figures = check_invariants("mixed", numbers, mon, max_attempts, max_channels)

    row = Campaign.get(Campaign.name == "mixed")
    done_at = from_db(StateChange.select().where((StateChange.campaign == row) & (
        StateChange.to_state == "completed")).get().at)
    fc = body["forecast"]
    predicted = dt.datetime.fromisoformat(fc["finishes_at"])
    error_s = (predicted - done_at).total_seconds()
    remaining_s = (done_at - at).total_seconds()
    print("FIGURES forecast", {
        "forecast_at_s": round((at - began).total_seconds(), 2),
        "settled_then": sum(body["numbers"][s] for s in SETTLED),
        "predicted_finish_s": round((predicted - began).total_seconds(), 2),
        "actual_finish_s": round((done_at - began).total_seconds(), 2),
        "error_s": round(error_s, 2), "remaining_s": round(remaining_s, 2),
        "error_ratio": round(abs(error_s) / remaining_s, 3), "forecast": fc,
        "attempts_made_after": figures["attempts"]})
    assert fc["reason"] is None and fc["cannot_finish_before_end"] is False
    # read a moment after the counts: calls may have settled numbers in between
    unsettled = len(numbers) - sum(body["numbers"][s] for s in SETTLED)
    assert unsettled - max_channels <= fc["remaining"] <= unsettled
    assert remaining_s > 5     # the forecast was made with most of the run ahead
    assert abs(error_s) <= 0.20 * remaining_s
