"""Benchmark 2: pacing accuracy of `agi-campaign run` against Asterisk's own channel count.

Campaign `pace`: 300 callees that answer and stay 5-9 s (the message is 10 s of silence, so the
callee's hangup ends the call), max_channels 50, delay_ms 0. harness.ChannelMonitor counts the
callee legs up on Asterisk (Newchannel/Hangup events); a sampler reads that count every 20 ms.
Reported: the peak (must never exceed 50) and the mean utilisation of the cap from the first
call start until the last number starts (while due numbers remain); the baseline is the cap.
Campaign `spaced`: 40 callees, delay_ms 200: the mean and minimum gap between call starts seen
by Asterisk, against delay_ms.
"""
import random
import time

from common import main_for, row, percentile  # noqa: E402

from agi_campaign import campaigns
from agi_campaign.testing import harness
from agi_campaign.clock import SystemClock, to_db
from agi_campaign.config import load_config
from agi_campaign.models import open_database
from agi_campaign.models import Campaign
from agi_campaign.testing.process import ServiceProcess

import sandbox_env

CAP = 50
N_PACE = 300
N_SPACED = 40
DELAY_MS = 200


def wait_completed(name, timeout, service):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        if Campaign.get(Campaign.name == name).state == "completed":
            return
    raise RuntimeError("campaign %s did not complete:\n%s" % (name, service.log_tail()))


def run(workdir):
    rng = random.Random(5)
    box = sandbox_env.start_sandbox()
    try:
        long_msg = {"type": "message", "sounds": ["silence/10"]}
        cfgs = {"pace": sandbox_env.campaign(box, max_channels=CAP, delay_ms=0,
                                             dial_timeout_s=15, on_connect=long_msg),
                "spaced": sandbox_env.campaign(box, max_channels=CAP, delay_ms=DELAY_MS,
                                               dial_timeout_s=15, on_connect=long_msg)}
        path, port, db_url = sandbox_env.write_service_config(workdir, box, cfgs)
        open_database(db_url)
        clock = SystemClock()
        rows = campaigns.sync_campaigns(load_config(str(path)), clock.now())
        pace = ["+" + harness.callee_number(i, "answer", hold_s=rng.randint(5, 9))[1:]
                for i in range(N_PACE)]
        spaced = ["+" + harness.callee_number(2000 + i, "answer", hold_s=1)[1:]
                  for i in range(N_SPACED)]
        sandbox_env.insert_numbers(rows["pace"].id, pace, to_db(clock.now()))
        sandbox_env.insert_numbers(rows["spaced"].id, spaced, to_db(clock.now()))
        service = ServiceProcess(path, "%s/service.log" % workdir, port).start()
        try:
            with harness.ChannelMonitor(box) as mon, sandbox_env.LiveSampler(mon) as sampler:
                time.sleep(2.5)
                campaigns.apply_command("pace", "start", clock.now())
                wait_completed("pace", 180, service)
                pace_starts = list(mon.start_times)
                peak = mon.peak
                sampler.stop()
                campaigns.apply_command("spaced", "start", clock.now())
                wait_completed("spaced", 60, service)
                spaced_starts = list(mon.start_times[len(pace_starts):])
        finally:
            service.stop(graceful=True)
    finally:
        box.stop()
    first, last = pace_starts[0], pace_starts[-1]
    window = sampler.between(first, last)
    util = sum(window) / len(window) / CAP
    gaps = [(b - a) * 1000 for a, b in zip(spaced_starts, spaced_starts[1:])]
    mean_gap = sum(gaps) / len(gaps)
    return [
        row("2 pacing", "peak concurrent calls (Asterisk) vs max_channels", peak, CAP, "calls",
            "<= cap", peak <= CAP, note="%d calls of 5-9 s" % len(pace_starts)),
        row("2 pacing", "mean utilisation of the cap while numbers are due", util * CAP, CAP,
            "calls", ">= 0.95", util >= 0.95,
            note="%.1f s window, %d samples" % (last - first, len(window))),
        row("2 pacing", "mean spacing of call starts vs delay_ms", mean_gap, DELAY_MS, "ms",
            "0.9-1.1, min >= 0.95 delay",
            abs(mean_gap / DELAY_MS - 1) <= 0.1 and min(gaps) >= 0.95 * DELAY_MS,
            note="min %.0f ms, p50 %.0f ms, max %.0f ms over %d gaps (starts seen by Asterisk: originate jitter included)" % (
                min(gaps), percentile(gaps, 50), max(gaps), len(gaps))),
    ]


if __name__ == "__main__":
    main_for(run)
