"""Benchmark 8: the HTTP server's overhead on the dialing rate.

The dialing rate of benchmark 1 (`agi-campaign run` as a child process, N answering callees,
max_channels 200, delay_ms 0; rate = attempts ended / (last ended_at - first created_at)),
with the HTTP server off, and on with /metrics and /readyz scraped every second (as Prometheus
and a load balancer would) while the campaign runs. The runs alternate in pairs ordered
off-on, on-off, off-on, ... (BENCH_HTTP_ROUNDS pairs, each run on a fresh database), so that a
drift of the machine or of the sandbox during the benchmark (a first trial with every pair
off-on saw the rates fall run after run) favours neither side; the figure is the median of the
pairs' on/off ratios, and the note gives every run in order (the spread).

Second row, for diagnosis (less noisy than rates on a shared machine): the service's CPU time
(utime + stime from /proc) per /metrics + /readyz pair, from SCRAPES pairs sent back to back
to an idle service (its idle CPU over the same time subtracted); at one pair a second, that
over 1 s is the share of one core the scraping takes.
"""
import contextlib
import os
import statistics
import threading
import time

from common import main_for, row  # noqa: E402  (common puts the repo on sys.path)

import httpx

import bench_dial
import sandbox_env
from agi_campaign import campaigns
from agi_campaign.clock import SystemClock
from agi_campaign.config import load_config
from agi_campaign.models import open_database
from agi_campaign.testing.process import ServiceProcess
from agi_campaign.testing.sandbox import free_port

N_CALLS = int(os.environ.get("BENCH_HTTP_CALLS", "2500"))
ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "4"))
SCRAPES = 200
TOKEN_ENV = "AGI_CAMPAIGN_API_TOKEN"


@contextlib.contextmanager
def scraping(port, token, counts):
    """Scrape /metrics and /readyz every second until the block ends; counts the replies."""
    halt = threading.Event()

    def loop():
        with httpx.Client(base_url="http://127.0.0.1:%d" % port, timeout=10) as client:
            while not halt.wait(1.0):
                for path, headers in (("/metrics", {"Authorization": "Bearer " + token}),
                                      ("/readyz", {})):
                    try:
                        code = client.get(path, headers=headers).status_code
                    except httpx.HTTPError as err:
                        code = type(err).__name__
                    counts[(path, code)] = counts.get((path, code), 0) + 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        halt.set()
        thread.join(15)


def cpu_s(pid):
    """utime + stime of process `pid`, in seconds."""
    with open("/proc/%d/stat" % pid, encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape_cpu_ms(box, workdir, token):
    """The service's CPU milliseconds per /metrics + /readyz pair (idle service, idle CPU
    subtracted)."""
    port = free_port()
    path, fastagi_port, db_url = sandbox_env.write_service_config(
        workdir, box, {"rate": sandbox_env.campaign(box)}, http={"host": "127.0.0.1",
                                                                 "port": port})
    open_database(db_url)
    campaigns.sync_campaigns(load_config(str(path)), SystemClock().now())
    service = ServiceProcess(path, os.path.join(workdir, "service.log"), fastagi_port).start()
    try:
        time.sleep(3)
        began, idle = time.monotonic(), cpu_s(service.pid)
        time.sleep(5)
        idle_per_s = (cpu_s(service.pid) - idle) / (time.monotonic() - began)
        with httpx.Client(base_url="http://127.0.0.1:%d" % port, timeout=10) as client:
            began, used = time.monotonic(), cpu_s(service.pid)
            for _ in range(SCRAPES):
                client.get("/metrics", headers={"Authorization": "Bearer " + token})
                client.get("/readyz")
            used = cpu_s(service.pid) - used - idle_per_s * (time.monotonic() - began)
    finally:
        service.stop(graceful=True)
    return max(used, 0.0) / SCRAPES * 1000


def run(workdir):
    token = os.environ.setdefault(TOKEN_ENV, "bench-token-" + "0" * 20)
    box = sandbox_env.start_sandbox("benchhttp")
    rates = {"off": [], "on": []}
    counts = {}
    try:
        for i in range(ROUNDS):
            for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
                where = os.path.join(workdir, "%s-%d" % (mode, i))
                os.makedirs(where)
                if mode == "off":
                    rate, _, total = bench_dial.ours(box, where, N_CALLS)
                else:
                    port = free_port()
                    rate, _, total = bench_dial.ours(
                        box, where, N_CALLS, http={"host": "127.0.0.1", "port": port},
                        during=lambda: scraping(port, token, counts))
                if total != N_CALLS:
                    raise RuntimeError("%s run %d: %d attempts, not %d" % (mode, i, total,
                                                                           N_CALLS))
                rates[mode].append(rate)
        where = os.path.join(workdir, "cpu")
        os.makedirs(where)
        cpu_ms = scrape_cpu_ms(box, where, token)
    finally:
        box.stop()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    ratio = statistics.median(b / a for a, b in zip(rates["off"], rates["on"]))
    scrapes = ", ".join("%s %s: %d" % (p, c, n) for (p, c), n in sorted(counts.items(),
                                                                        key=str))
    note = ("%d calls a run, %d pairs ordered off-on, on-off, ...; calls/s off %s, on %s "
            "(medians %.0f / %.0f); ratio: median of the pairs' on/off (%s); scrapes: %s" % (
                N_CALLS, ROUNDS, " ".join("%.0f" % r for r in rates["off"]),
                " ".join("%.0f" % r for r in rates["on"]), off, on,
                " ".join("%.2f" % (b / a) for a, b in zip(rates["off"], rates["on"])), scrapes))
    ok = all(code == 200 for (_, code) in counts) and bool(counts)
    return [
        row("9 HTTP overhead", "dialing rate with /metrics + /readyz scraped every 1 s vs "
            "HTTP server off", on, off, "calls/s", ">= 0.95", ratio >= 0.95 and ok,
            ratio=ratio, note=note),
        row("9 HTTP overhead", "service CPU per /metrics + /readyz pair (idle service)",
            cpu_ms, None, "ms", "(diagnosis)", None,
            note="%d pairs back to back; at one pair a second: %.1f %% of one core"
                 % (SCRAPES, cpu_ms / 10.0)),
    ]


if __name__ == "__main__":
    main_for(run)
