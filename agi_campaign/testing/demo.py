"""`agi-campaign demo`: a real campaign on a sandbox Asterisk 22, with live progress.

It builds (once) the Asterisk chroot, starts one sandbox Asterisk, writes a config and a CSV of
callees with mixed behaviours (answer, busy, no answer, congestion, unavailable) into a work
folder, imports them, adds one to a Do-Not-Call list, starts the campaign, shows progress every
second and ends with a summary of outcomes as the database recorded them.
"""
import collections
import os
import random
import sys
import tempfile
import time

from agi_campaign import campaigns, dnc, importer
from agi_campaign.testing import harness
from agi_campaign.config import load_config
from agi_campaign.models import Attempt, Campaign, Number
from agi_campaign.testing.sandbox import AsteriskSandbox, ensure_chroot, free_port
from agi_campaign.service import Service
from agi_campaign.status import status

CALLEE_LEG = r"@acamp-test-callees-.*;1$"
MIX = (("answer", 55), ("busy", 15), ("noanswer", 10), ("congestion", 10), ("unavailable", 10))
CAMPAIGN = {
    "caller_id": '"agi-campaign demo" <12025550100>', "type": "on_demand",
    "dnc_lists": ["blocked"], "dial_timeout_s": 5, "max_channels": 8, "max_attempts": 2,
    "delay_ms": 50, "retry_delay_s": 3,
    "on_connect": {"type": "message", "sounds": ["hello-world"]},
}


def demo_numbers(count, seed=7):
    rng = random.Random(seed)
    kinds = [k for k, w in MIX for _ in range(w)]
    return [harness.callee_number(i, rng.choice(kinds), hold_s=rng.randint(1, 3))
            for i in range(count)]


def run(numbers=60, workdir=None, out=sys.stdout, timeout_s=600):
    ensure_chroot()
    workdir = workdir or tempfile.mkdtemp(prefix="agi-campaign-demo-")
    os.makedirs(workdir, exist_ok=True)
    port = free_port()
    with AsteriskSandbox("demo", agi_url="agi://127.0.0.1:%d" % port, verbose=0) as ast:
        path = harness.write_config(os.path.join(workdir, "config.yaml"), {"sandbox": ast}, port,
                                    {"demo": CAMPAIGN})
        config = load_config(path)
        phones = demo_numbers(numbers)
        csv_path = harness.write_csv(os.path.join(workdir, "numbers.csv"), phones)
        service = Service(config)
        service.start()
        try:
            return _drive(service, config, phones, csv_path, out, timeout_s, ast)
        finally:
            service.stop(graceful=True)


def _drive(service, config, phones, csv_path, out, timeout_s, ast):
    clock = service.clock
    row = campaigns.get_campaign("demo")
    report = importer.import_csv(row.id, csv_path, "US", ("blocked",), clock.now())
    print("imported: %s" % report.summary(), file=out)
    dnc.add("blocked", [phones[0]], "US", clock.now(), source="demo",
            known_lists=list(config.dnc_lists))
    print("added %s to Do-Not-Call list 'blocked'" % phones[0], file=out)
    campaigns.apply_command("demo", "start", clock.now())
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        time.sleep(1)
        info = status(config, clock.now(), "demo")[0]
        c = info["numbers"]
        print("%5.1fs %-9s pending %3d  in flight %2d  done %3d  failed %3d  dnc %d  "
              "(calls up on Asterisk: %d)" % (time.monotonic() - began, info["state"],
                                             c["pending"], info["in_flight"], c["done"],
                                             c["failed"], c["dnc"],
                                             ast.count_channels(CALLEE_LEG)),
              file=out, flush=True)
        if info["state"] == "COMPLETED":
            break
    return _summary(out)


def _summary(out):
    row = Campaign.get(Campaign.name == "demo")
    outcomes = collections.Counter(a.outcome for a in Attempt.select().where(
        Attempt.campaign == row))
    statuses = collections.Counter(n.status for n in Number.select().where(
        Number.campaign == row))
    print("\nfinal state: %s" % row.state.upper(), file=out)
    print("attempts by outcome: " + ", ".join("%s %d" % kv for kv in sorted(outcomes.items())),
          file=out)
    print("numbers by status:   " + ", ".join("%s %d" % kv for kv in sorted(statuses.items())),
          file=out)
    return 0 if row.state == "completed" else 1
