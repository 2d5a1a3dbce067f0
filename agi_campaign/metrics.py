"""The service's Prometheus metrics (prometheus_client), on a registry of its own.

Names start with `agi_campaign_`, carry their unit (`_seconds`), counters end in `_total`.
Labels are only `campaign` (its name), `server` (a config server name), `outcome` and `status`
(our enum values): never a phone number, attempt id or token. The README's "Metrics and
health" section lists every metric.

Two kinds, so that the dialing hot path never queries the database for a metric:

- Kept in memory and observed where the value is at hand (one labels() lookup each):
  `attempts_total{campaign,outcome}` counts attempts ended, *once their transaction
  committed* (agi_campaign.results.Recorder counts through the result writer's future: a
  rolled-back batch is not counted, a batch rerun one write at a time counts each write once).
  It is seeded at start from the database (`seed_attempts`, one GROUP BY), so it equals the
  database's count of ended attempts and a restart does not reset it. A COMMIT whose
  connection died and that had in fact been applied is rerun as "already ended" and not
  counted (rare; the numbers gauge and the database stay right). The histograms
  (answer delay, call duration, claim and result-write latency) count this process's
  observations only.
- Read at scrape time by `ServiceCollector` (a custom collector over the running service):
  calls in flight per campaign and server (one GROUP BY on the attempt table's status index),
  numbers per campaign and status (one GROUP BY, cached NUMBERS_CACHE_S so that a scrape a
  second on a table of millions stays cheap: these lag by up to that long), AMI state per
  server, FastAGI sessions, the result writer's queue, the webhook backlog, the age of the
  scheduler's last states tick. A database error during a scrape leaves out the database
  families of that scrape (logged) and still answers with the others.
"""
import logging
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agi_campaign.db import database
from agi_campaign.models import IN_FLIGHT_STATUSES, NumberStatus

log = logging.getLogger(__name__)

PREFIX = "agi_campaign_"
NUMBERS_CACHE_S = 5.0
ANSWER_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90)
DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

_ENDED_BY_OUTCOME = ("SELECT c.name, a.outcome, COUNT(*) FROM attempt a JOIN campaign c "
                     "ON c.id = a.campaign_id WHERE a.status = 'ended' GROUP BY c.name, a.outcome")
_IN_FLIGHT = ("SELECT campaign_id, server, COUNT(*) FROM attempt WHERE status IN (%s) "
              "GROUP BY campaign_id, server")
_NUMBERS = "SELECT campaign_id, status, COUNT(*) FROM number GROUP BY campaign_id, status"


class Metrics:
    """The instruments, and the calls that observe them (cheap: safe on the hot path)."""

    def __init__(self, monotonic=time.monotonic, numbers_cache_s=NUMBERS_CACHE_S):
        self.registry = CollectorRegistry(auto_describe=True)
        self.monotonic = monotonic
        self.numbers_cache_s = numbers_cache_s
        reg = self.registry
        self.attempts = Counter(
            PREFIX + "attempts", "Attempts ended, by campaign and outcome (seeded from the "
            "database at start; counted once the result is committed).",
            ["campaign", "outcome"], registry=reg)
        self.answer_delay = Histogram(
            PREFIX + "originate_to_answer_seconds", "From the attempt's claim (just before its "
            "Originate) to the answer, for answered calls.", ["campaign"],
            buckets=ANSWER_BUCKETS, registry=reg)
        self.call_duration = Histogram(
            PREFIX + "call_duration_seconds", "From the attempt's claim to its end, for every "
            "ended attempt.", ["campaign"], buckets=DURATION_BUCKETS, registry=reg)
        self.claim_latency = Histogram(
            PREFIX + "claim_duration_seconds", "Time to claim due numbers (one claim "
            "transaction of the engine's dial loop).", ["campaign"], buckets=LATENCY_BUCKETS,
            registry=reg)
        self.write_latency = Histogram(
            PREFIX + "result_write_duration_seconds", "Time to apply and commit one "
            "transaction of the result writer (many results a transaction).",
            buckets=LATENCY_BUCKETS, registry=reg)

    # ---- observations (called by results, engine, result_writer) ------------------------
    def attempt_ended(self, campaign, outcome, duration_s):
        """An attempt ended and its transaction committed."""
        self.attempts.labels(campaign, outcome).inc()
        self.call_duration.labels(campaign).observe(duration_s)

    def answered(self, campaign, delay_s):
        """An answer was recorded (committed), `delay_s` after the attempt's claim."""
        self.answer_delay.labels(campaign).observe(delay_s)

    def claimed(self, campaign, seconds):
        self.claim_latency.labels(campaign).observe(seconds)

    def batch_committed(self, seconds):
        self.write_latency.observe(seconds)

    # ---- set-up -------------------------------------------------------------------------
    def seed_attempts(self):
        """Start `attempts_total` at the database's counts of ended attempts (one query; call
        it before the result writer starts, in a connection context)."""
        for campaign, outcome, count in database.execute_sql(_ENDED_BY_OUTCOME).fetchall():
            if outcome:
                self.attempts.labels(campaign, outcome).inc(count)

    def watch(self, service):
        """Register the scrape-time collector of `service` (agi_campaign.service.Service)."""
        self.registry.register(ServiceCollector(service, self))


class ServiceCollector:
    """The scrape-time metrics of a running service (see the module docstring). Reads the
    service's attributes duck-typed: `amis`, `fastagi`, `writer`, `engine`, `clock`,
    `webhook_backlog()`; any that is None (not started yet, stopped) is left out."""

    def __init__(self, service, metrics):
        self._service = service
        self._metrics = metrics
        self._lock = threading.Lock()
        self._numbers = None  # (monotonic time read, rows)

    def describe(self):
        """The families without samples (so registering never queries the database)."""
        return [family for family, _ in _families()]

    def collect(self):
        by = {name: fam for fam, name in _families()}
        svc = self._service
        try:
            with database.connection_context():
                names = dict(database.execute_sql("SELECT id, name FROM campaign").fetchall())
                self._in_flight(by["calls_in_flight"], names)
                self._numbers_by_status(by["numbers"], names)
        except Exception as err:  # boundary: a scrape still answers without the database
            log.warning("metrics: database families left out of this scrape: %s",
                        str(err).strip().splitlines()[0] if str(err).strip() else type(err))
            by.pop("calls_in_flight")
            by.pop("numbers")
        for name, ami in sorted(svc.amis.items()):
            by["ami_up"].add_metric([name], 1.0 if ami.connected else 0.0)
        if svc.fastagi is not None:
            by["fastagi_sessions"].add_metric([], svc.fastagi.active_connections)
            by["fastagi_sessions_total"].add_metric([], svc.fastagi.sessions_total)
        if svc.writer is not None:
            by["writer_queue"].add_metric([], svc.writer.queue_depth)
        try:
            backlogs = svc.webhook_backlog()
        except Exception as err:  # boundary: as above (the backlog is read from the database)
            log.warning("metrics: webhook backlog left out of this scrape: %s",
                        str(err).strip().splitlines()[0] if str(err).strip() else type(err))
            backlogs = {}
        for campaign, backlog in sorted(backlogs.items()):
            by["webhook_backlog"].add_metric([campaign], backlog.get("pending", 0))
            by["webhook_failed"].add_metric([campaign], backlog.get("failed", 0))
            if backlog.get("oldest_s") is not None:
                by["webhook_oldest"].add_metric([campaign], backlog["oldest_s"])
        last = getattr(svc.engine, "last_tick_m", None)
        if last is not None:
            by["tick_age"].add_metric([], max(svc.clock.monotonic() - last, 0.0))
        return list(by.values())

    def _in_flight(self, family, names):
        """Calls in flight per (campaign, server); 0 for each campaign's configured server."""
        counts = {}
        for name in names.values():
            cfg = self._service.config.campaigns.get(name)
            if cfg is not None:
                counts[(name, cfg.server)] = 0
        sql = _IN_FLIGHT % ", ".join(database.param for _ in IN_FLIGHT_STATUSES)
        for cid, server, count in database.execute_sql(sql, IN_FLIGHT_STATUSES).fetchall():
            counts[(names.get(cid, str(cid)), server)] = count
        for (campaign, server), count in sorted(counts.items()):
            family.add_metric([campaign, server], count)

    def _numbers_by_status(self, family, names):
        """Numbers per (campaign, status), every status present (0 when none); cached."""
        now = self._metrics.monotonic()
        with self._lock:
            cached = self._numbers
            if cached is None or now - cached[0] >= self._metrics.numbers_cache_s:
                cached = self._numbers = (now, database.execute_sql(_NUMBERS).fetchall())
        counts = {(names[cid], s.value): 0 for cid in names for s in NumberStatus}
        for cid, status, count in cached[1]:
            counts[(names.get(cid, str(cid)), status)] = count
        for (campaign, status), count in sorted(counts.items()):
            family.add_metric([campaign, status], count)


def _families():
    """(empty family, short name) of every scrape-time metric."""
    def gauge(name, doc, labels=()):
        return GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))
    return [
        (gauge("calls_in_flight", "Attempts claimed and not ended (dialing or answered).",
               ["campaign", "server"]), "calls_in_flight"),
        (gauge("numbers", "Numbers by campaign and status (read at most every %g s)."
               % NUMBERS_CACHE_S, ["campaign", "status"]), "numbers"),
        (gauge("ami_up", "1 when the server's AMI connection is logged in, else 0.",
               ["server"]), "ami_up"),
        (gauge("fastagi_sessions", "FastAGI sessions open now."), "fastagi_sessions"),
        (CounterMetricFamily(PREFIX + "fastagi_sessions", "FastAGI sessions accepted since "
                             "start.", labels=[]), "fastagi_sessions_total"),
        (gauge("result_writer_queue_depth", "Result writes waiting for or in the result "
               "writer's transaction."), "writer_queue"),
        (gauge("webhook_backlog", "Webhook deliveries pending.", ["campaign"]),
         "webhook_backlog"),
        (gauge("webhook_failed", "Webhook deliveries that failed for good.", ["campaign"]),
         "webhook_failed"),
        (gauge("webhook_oldest_pending_age_seconds", "Age of the oldest pending webhook "
               "delivery.", ["campaign"]), "webhook_oldest"),
        (gauge("scheduler_last_tick_age_seconds", "Seconds since the scheduler's last "
               "completed states tick."), "tick_age"),
    ]


def exposition(metrics):
    """(body bytes, content type) of the text exposition format."""
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
