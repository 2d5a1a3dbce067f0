"""Benchmark 1: end-to-end dialing rate, ours vs a raw AMI + FastAGI loop on the same Asterisk,
and what each call costs Asterisk on our two call paths (dialplan/README.md).

Ours: `agi-campaign run` (child process) dials a campaign of N numbers whose callees answer at
once; on_connect plays the 20 ms sound; max_channels 200, delay_ms 0, tick 200 ms (the
default). Rate = attempts ended / (last ended_at - first created_at), from the database. It runs
twice: on the server's default call path (direct) and with `call_path: local` (the path before
issue 15). For every loop, Asterisk's CPU per call (its process's user + system time over the
loop, from /proc) and channels per call (Newchannel events seen by the sandbox's monitor user).

Baseline A (the goal's baseline; docs/ASTERISK.md, "The dialing-speed ceiling"): a
plain-socket AMI client sends async Originates of `Local/<callee>@acamp-test-callees` into
`[bench-raw-connect]`, whose answered leg runs a FastAGI `connect` script on a plain threaded server (read env, STREAM FILE the same
20 ms sound, close), at most 200 in flight (a slot frees when the script ends). Run before and
after ours; the better run is the baseline.

Baseline B (for diagnosis): the same raw loop, but each call goes through the local path's
dialplan (`Local/<id>@agi-campaign-dialout/n`, hangup handler, AstDB copy, the `result` FastAGI
script answered with DATABASE DEL of that copy); a slot frees when `result` arrives. B/A is what
that dialplan costs; ours on the local path against B what our Python costs on it.
"""
import contextlib
import os
import threading
import time

from common import main_for, row  # noqa: E402  (common puts the repo on sys.path)

from agi_campaign import campaigns
from agi_campaign.testing import harness
from agi_campaign.clock import SystemClock
from agi_campaign.config import load_config
from agi_campaign.models import open_database
from agi_campaign.models import Attempt, Campaign
from agi_campaign.testing.process import ServiceProcess

import common
import sandbox_env

N_CALLS = int(os.environ.get("BENCH_DIAL_CALLS", "5000"))
IN_FLIGHT = 200


class Cost:
    """While entered: Asterisk's CPU seconds and the channels it created; `per_call(n)`."""

    def __init__(self, box):
        self.box = box

    def __enter__(self):
        self.counter = sandbox_env.ChannelCounter(self.box).__enter__()
        self.cpu0 = sandbox_env.asterisk_cpu_s(self.box)
        return self

    def __exit__(self, *exc):
        self.cpu_s = sandbox_env.asterisk_cpu_s(self.box) - self.cpu0
        self.counter.__exit__(*exc)

    def per_call(self, n):
        """(CPU ms a call, channels a call)."""
        return self.cpu_s * 1000.0 / n, self.counter.count / n


def raw_loop(box, n, dialplan, in_flight=IN_FLIGHT, channel_ids=False):
    """(calls completed per second, failed originates, Cost) of the raw loop; dialplan 'A'
    (minimal) or 'B' (our local path); at most `in_flight` calls up; `channel_ids`: loop A's
    Originates name their channel (`ChannelId`, as ours do; channelid_cost.py)."""
    slots = threading.BoundedSemaphore(in_flight)
    done = threading.Semaphore(0)
    sound = sandbox_env.tick_sound(box)

    def commands(env):
        script = env.get("agi_network_script", "")
        if script.startswith("connect"):
            return ['STREAM FILE %s ""' % sound]
        if script.startswith("result"):
            return ["DATABASE DEL agi-campaign raw-%s" % env.get("agi_arg_1", "")]
        return []

    finish_on = "connect" if dialplan == "A" else "result"

    def on_done(env):
        if env.get("agi_network_script", "").startswith(finish_on):
            slots.release()
            done.release()

    failures = []

    def on_message(msg):
        if msg.startswith(b"Event: OriginateResponse") and b"Response: Failure" in msg:
            failures.append(msg)
            slots.release()
            done.release()

    with common.PlainAgiServer(commands, on_done) as agi, Cost(box) as cost:
        url = "agi://127.0.0.1:%d" % agi.port
        ami = sandbox_env.RawAmi(box.ami_credentials, on_message)
        try:
            began = time.monotonic()
            for i in range(n):
                slots.acquire()
                callee = harness.callee_number(i, "answer", hold_s=1)[1:]
                if dialplan == "A":
                    headers = {"Channel": "Local/%s@acamp-test-callees" % callee,
                               "Context": "bench-raw-connect", "Exten": "s",
                               "Priority": "1", "Timeout": "15000"}
                    if channel_ids:
                        headers["ChannelId"] = "raw-%d-%016x" % (i + 1, i + 1)
                    ami.originate(headers, ["BENCH_AGI=%s" % url])
                else:
                    token = "%016x" % (i + 1)
                    ami.originate({"Channel": "Local/%d@agi-campaign-dialout/n" % (i + 1),
                                   "Context": "agi-campaign-connect", "Exten": "s",
                                   "Priority": "1", "Timeout": "15000",
                                   "ChannelId": "raw-%d-%s" % (i + 1, token),
                                   "OtherChannelId": "raw-%d-%s-2" % (i + 1, token)},
                                  ["ACAMP_ATTEMPT=%d" % (i + 1), "ACAMP_TOKEN=%s" % token,
                                   "ACAMP_KEY=raw-%d" % (i + 1),
                                   "ACAMP_DIAL=Local/%s@acamp-test-callees" % callee,
                                   "ACAMP_TIMEOUT=5", "ACAMP_AGI=%s" % url,
                                   "ACAMP_CAMPAIGN=1"])
            for _ in range(n):
                if not done.acquire(timeout=60):
                    raise RuntimeError("raw loop %s: calls stopped completing" % dialplan)
            took = time.monotonic() - began
        finally:
            ami.close()
    sandbox_env.wait_idle(box)
    return n / took, len(failures), cost


def ours(box, workdir, n, http=None, during=contextlib.nullcontext, db_url=None,
         call_path=None, cost=None):
    """Calls completed per second by `agi-campaign run` on a campaign of n answering callees.
    `http`: the service's http: section (None: no HTTP server); `during()`: a context manager
    entered while the campaign runs (bench_http scrapes the service in it); `db_url`: an
    empty database (None: a new SQLite file in `workdir`); `call_path`: the server's (None:
    the default); `cost`: a Cost entered while the campaign runs."""
    cfg = {"rate": sandbox_env.campaign(box, max_channels=IN_FLIGHT, delay_ms=0)}
    path, port, db_url = sandbox_env.write_service_config(workdir, box, cfg, http=http,
                                                          db_url=db_url, call_path=call_path)
    config = load_config(str(path))
    open_database(db_url)
    clock = SystemClock()
    rows = campaigns.sync_campaigns(config, clock.now())
    phones = ["+" + harness.callee_number(i, "answer", hold_s=1)[1:] for i in range(n)]
    from agi_campaign.clock import to_db
    sandbox_env.insert_numbers(rows["rate"].id, phones, to_db(clock.now()))
    service = ServiceProcess(path, "%s/service.log" % workdir, port).start()
    spy = common.profile(service.pid, workdir, "dial")
    try:
        time.sleep(2.5)  # the engine's AMI settle delay
        with during(), cost or contextlib.nullcontext():
            campaigns.apply_command("rate", "start", clock.now())
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if Campaign.get(Campaign.name == "rate").state == "completed":
                    break
            else:
                raise RuntimeError("campaign did not complete:\n" + service.log_tail())
    finally:
        common.profile_stop(spy)
        service.stop(graceful=True)
    q = Attempt.select()
    first = min(a.created_at for a in q)
    last = max(a.ended_at for a in q if a.ended_at)
    answered = Attempt.select().where(Attempt.outcome == "answered").count()
    total = q.count()
    sandbox_env.wait_idle(box)
    return total / (last - first).total_seconds(), answered, total


def run(workdir):
    box = sandbox_env.start_sandbox()
    try:
        raw_a1, fail_a1, cost_a = raw_loop(box, N_CALLS, "A")
        raw_b, fail_b, cost_b = raw_loop(box, N_CALLS, "B")
        os.makedirs(os.path.join(workdir, "local"), exist_ok=True)
        cost_local, cost_direct = Cost(box), Cost(box)
        rate_local, answered_local, total_local = ours(
            box, os.path.join(workdir, "local"), N_CALLS, call_path="local", cost=cost_local)
        rate, answered, total = ours(box, workdir, N_CALLS, cost=cost_direct)
        raw_a2, fail_a2, _ = raw_loop(box, N_CALLS, "A")
    finally:
        box.stop()
    base = max(raw_a1, raw_a2)
    cpu_a, chans_a = cost_a.per_call(N_CALLS)
    cpu_b, chans_b = cost_b.per_call(N_CALLS)
    cpu_l, chans_l = cost_local.per_call(total_local)
    cpu_d, chans_d = cost_direct.per_call(total)
    note = ("%d calls, 200 in flight, 20 ms message; direct path (the default); %d/%d answered; "
            "raw A runs %.0f and %.0f calls/s (%d failed originates)" % (
                N_CALLS, answered, total, raw_a1, raw_a2, fail_a1 + fail_a2))
    return [
        row("1 dialing rate", "calls completed/s vs raw loop A (minimal dialplan)", rate, base,
            "calls/s", ">= 0.5", rate / base >= 0.5, note=note),
        row("1 dialing rate", "call_path: local (before issue 15) vs raw loop A", rate_local,
            base, "calls/s", "(before)", None,
            note="%d/%d answered" % (answered_local, total_local)),
        row("1 dialing rate", "call_path: local vs raw loop B (its dialplan, plain Python)",
            rate_local, raw_b, "calls/s", "(diagnosis)", None,
            note="B/A = %.2f: the cost of the local path's dialplan (4 channels, 2 FastAGI "
                 "sessions, AstDB per call)%s" % (raw_b / base, "; %d failed" % fail_b
                                                  if fail_b else "")),
        row("1 Asterisk CPU per call", "direct path vs local path (ours, same run)", cpu_d,
            cpu_l, "ms", "<= 0.55", cpu_d / cpu_l <= 0.55,
            note="Asterisk process user + system time / calls; raw loop A %.2f ms, raw loop B "
                 "%.2f ms; direct is %.2fx raw A" % (cpu_a, cpu_b, cpu_d / cpu_a)),
        row("1 channels per call", "direct path vs local path (ours, same run)", chans_d,
            chans_l, "channels", "(report)", None,
            note="Newchannel events / calls; the sandbox's callee is itself a Local pair "
                 "(2 channels): on a real trunk 1 vs 3; raw loop A %.2f, raw loop B %.2f"
                 % (chans_a, chans_b)),
    ]


if __name__ == "__main__":
    main_for(run)
