"""/metrics, /readyz and the systemd notifications of the real service on the real Asterisk 22:
the metrics scraped every second during a 200-number campaign equal the database at the end;
readiness follows the AMI server; READY=1, WATCHDOG=1 and STOPPING=1 reach NOTIFY_SOCKET."""
import collections
import random
import secrets
import signal
import socket
import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from agi_campaign import campaigns
from agi_campaign.clock import SystemClock
from agi_campaign.db import database
from agi_campaign.testing import harness
from agi_campaign.testing.sandbox import free_port

from tests.integration.support import (EXPECTED_OUTCOME, campaign, destinations_recorded, load,
                                       prepared_service, state, wait_for)

TOKEN = "m" * 32


def scrape(base):
    """{(sample name, frozenset(labels)): value} of one /metrics scrape."""
    reply = httpx.get(base + "/metrics", headers={"Authorization": "Bearer " + TOKEN},
                      timeout=10)
    assert reply.status_code == 200, reply.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(reply.text) for s in fam.samples}


def by_label(samples, name, *labels):
    return {tuple(dict(k[1])[lb] for lb in labels): v for k, v in samples.items()
            if k[0] == name}


class Scraper(threading.Thread):
    """Scrapes /metrics and /readyz about every second until stopped."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base = base
        self.scrapes = []
        self.ready_codes = collections.Counter()
        self.errors = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.wait(1.0):
            try:
                self.scrapes.append(scrape(self.base))
                self.ready_codes[httpx.get(self.base + "/readyz", timeout=10).status_code] += 1
            except Exception as err:  # reported by the test
                self.errors.append(repr(err))


def db_rows(sql):
    return database.execute_sql(sql).fetchall()


def test_metrics_scraped_during_a_200_number_campaign_equal_the_database(
        dialer, asterisk, tmp_path, monkeypatch):
    monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", TOKEN)
    rng = random.Random(5)
    kinds = ["answer"] * 10 + ["busy"] * 3 + ["noanswer"] * 2 + ["congestion"] * 2 + \
        ["unavailable"] * 2
    phones = [harness.callee_number(2000 + i, rng.choice(kinds), hold_s=rng.randint(1, 2))
              for i in range(200)]
    max_channels = 25
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    with harness.ChannelMonitor(asterisk) as mon:
        service, _ = dialer.start({"mixed": campaign(max_channels=max_channels, delay_ms=15)},
                                  {"main": asterisk}, http={"host": "127.0.0.1", "port": port})
        scraper = Scraper(base)
        scraper.start()
        try:
            load("mixed", phones, tmp_path)
            campaigns.apply_command("mixed", "start", SystemClock().now())
            wait_for(lambda: state("mixed") == "completed", 240, step=0.5)
            wait_for(lambda: destinations_recorded("mixed") and service.writer.queue_depth == 0,
                     30)
        finally:
            scraper.halt.set()
            scraper.join(15)
    in_flight = [v for s in scraper.scrapes
                 for v in by_label(s, "agi_campaign_calls_in_flight", "campaign").values()]
    print("scrapes %d, readyz %s, peak calls in flight (metrics) %d, peak callee legs "
          "(Asterisk) %d of max %d" % (len(scraper.scrapes), dict(scraper.ready_codes),
                                      max(in_flight), mon.peak, max_channels))
    assert not scraper.errors, scraper.errors[:3]
    assert len(scraper.scrapes) >= 10
    assert 0 < max(in_flight) <= max_channels
    assert set(scraper.ready_codes) == {200}

    attempts_db = {(c, o): n for c, o, n in db_rows(
        "SELECT c.name, a.outcome, COUNT(*) FROM attempt a JOIN campaign c ON c.id = "
        "a.campaign_id WHERE a.status = 'ended' GROUP BY c.name, a.outcome")}
    numbers_db = {(c, s): n for c, s, n in db_rows(
        "SELECT c.name, n.status, COUNT(*) FROM number n JOIN campaign c ON c.id = "
        "n.campaign_id GROUP BY c.name, n.status")}
    (ended,), = db_rows("SELECT COUNT(*) FROM attempt WHERE status = 'ended'")
    (answered,), = db_rows("SELECT COUNT(*) FROM attempt WHERE answered_at IS NOT NULL")
    (total,), = db_rows("SELECT COUNT(*) FROM attempt")
    assert ended == total == mon.started  # every attempt ended; one callee leg each
    assert {o for _, o in attempts_db} == set(EXPECTED_OUTCOME.values())

    def numbers_settled():  # numbers by status are cached for NUMBERS_CACHE_S
        got = by_label(scrape(base), "agi_campaign_numbers", "campaign", "status")
        return {k: v for k, v in got.items() if v} == numbers_db
    wait_for(numbers_settled, 20, step=1.0)
    final = scrape(base)
    assert by_label(final, "agi_campaign_attempts_total", "campaign", "outcome") == attempts_db
    assert by_label(final, "agi_campaign_calls_in_flight", "campaign", "server") == \
        {("mixed", "main"): 0}
    assert by_label(final, "agi_campaign_call_duration_seconds_count", "campaign") == \
        {("mixed",): ended}
    assert by_label(final, "agi_campaign_originate_to_answer_seconds_count", "campaign") == \
        {("mixed",): answered}
    assert answered == attempts_db[("mixed", "answered")]
    assert by_label(final, "agi_campaign_ami_up", "server") == {("main",): 1}
    assert by_label(final, "agi_campaign_fastagi_sessions_total")[()] >= answered
    assert by_label(final, "agi_campaign_result_writer_queue_depth")[()] == 0
    print("attempts by outcome %s; ended %d, answered %d" % (
        {o: n for (_, o), n in sorted(attempts_db.items())}, ended, answered))


def test_readyz_follows_ami_and_systemd_gets_ready_watchdog_stopping(
        asterisk_factory, tmp_path, monkeypatch):
    """The service as a child process under a fake systemd (a datagram socket): READY=1 once
    started, WATCHDOG=1 every half WATCHDOG_USEC, also with the AMI server down (restarting
    the dialer would not repair Asterisk) while /readyz turns 503; STOPPING=1 on SIGTERM."""
    box = asterisk_factory()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = "@acamp-notify-" + secrets.token_hex(6)
    notify.bind("\0" + name[1:])
    got = []

    def receive(expected, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            notify.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                got.append(notify.recv(4096).decode())
            except socket.timeout:
                break
            if got[-1] == expected:
                return
        raise AssertionError("no %s within %s s; got %s" % (expected, timeout, got))

    monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", TOKEN)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    _, proc = prepared_service(tmp_path, {"main": box}, {"c": campaign()}, {},
                               http={"host": "127.0.0.1", "port": port})
    proc.start()
    try:
        receive("READY=1", 30)
        receive("WATCHDOG=1", 10)
        wait_for(lambda: httpx.get(base + "/readyz", timeout=10).status_code == 200, 15)
        assert by_label(scrape(base), "agi_campaign_ami_up", "server") == {("main",): 1}
        box.stop()
        wait_for(lambda: httpx.get(base + "/readyz", timeout=10).status_code == 503, 30)
        body = httpx.get(base + "/readyz", timeout=10).json()
        assert body["status"] == "unavailable"
        assert body["checks"]["ami:main"]["ok"] is False
        assert body["checks"]["database"]["ok"] and body["checks"]["scheduler"]["ok"]
        assert by_label(scrape(base), "agi_campaign_ami_up", "server") == {("main",): 0}
        got.clear()
        receive("WATCHDOG=1", 10)  # still pinging: database and scheduler are fine
        proc.signal(signal.SIGTERM)
        receive("STOPPING=1", 20)
        proc.proc.wait(30)
    finally:
        if proc.running:
            proc.stop()
        notify.close()
    print("notifications after the AMI server stopped: %s" % got)
