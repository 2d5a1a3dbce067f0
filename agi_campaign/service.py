"""`agi-campaign run`: the FastAGI server and the scheduler in one process.

Start-up order: database (tables created), campaigns synced from YAML, FastAGI server listening
(so that results of calls still running from a previous run can come in), AMI connections, the
APScheduler jobs, then the HTTP server (`http:` section; agi_campaign.api), the last to stop.
Start-up fails with one clear line when the database is unwritable, the FastAGI or HTTP port is
taken, or no Asterisk server accepts our AMI login; a server that is down while others are up is
logged and retried with backoff, and its campaigns wait.

Several nodes: any number of `run` processes may share one PostgreSQL database; every cap holds
across them (agi_campaign.gate), each reconciles its own attempts and those of nodes that are
gone (agi_campaign.engine). On SQLite a second `run` on the same database refuses to start,
naming the first and PostgreSQL (agi_campaign.deployment.ServiceLock).

Stop: the first SIGTERM/SIGINT stops new calls and waits for calls in flight to end and be
recorded; whatever is still up then (a long queue or conference call) keeps running on Asterisk
and is recovered at the next start (its result reaches the next service by FastAGI, or is read
from AstDB). The whole stop takes at most service.stop_deadline_s: the wait ends
STOP_RESERVE_S before it, leaving that time to close connections, and a watchdog ends the
process at the deadline if closing hangs (a stuck database). FastAGI sessions run in daemon
threads, so no call holds the exit. A second signal exits at once with status 1, as SIGKILL
would (recovery at the next start covers what was cut).

Heartbeat: the service's `service_heartbeat` row (agi_campaign.heartbeat) is written at start,
every second by a scheduler job, and marked stopped at the end of a stop.

Live reload (SIGHUP, or `agi-campaign reload`): the signal handler only sets a flag; the main
loop calls `reload()`, which re-reads the config file. An invalid file is refused with the
message `check-config` prints (logged as an ERROR, recorded in the heartbeat) and the running
config stays. Otherwise (agi_campaign.reloadplan): campaign rows are synced, added campaigns
get a pacer and a `dial:<name>` job, changed ones apply from the next tick (the engine reads the
swapped config), removed ones lose their dial job and are PAUSED ("removed from the config"):
their calls in flight finish and are recorded with the campaign's last rules (and its
on_connect, for calls answered after the reload); keys that need a restart keep their running
value (a WARNING names them). The outcome goes to the heartbeat (`reload_at/ok/text`).

The scheduler's jobs and their overlap, misfire and failure policy: agi_campaign.scheduler.
Webhooks: results and state changes write their outbox rows (agi_campaign.webhooks); the
Deliverer's threads (agi_campaign.webhook_delivery) POST them, started once the heartbeat row
exists (its id is the node id holding their leases) and stopped within a second.

Under systemd (`Type=notify`, agi_campaign.systemd) the service sends READY=1 once started,
WATCHDOG=1 while agi_campaign.health.alive holds, and STOPPING=1 when it begins to stop.
Metrics (agi_campaign.metrics): the attempts counter is seeded from the database before the
result writer starts; the recorder, engine and writer observe the rest.
"""
import logging
import os
import signal
import threading

import peewee

from agi_campaign import campaigns, health, reloadplan, scheduler as jobs, systemd, webhooks
from agi_campaign.ami import AmiClient
from agi_campaign.clock import SystemClock
from agi_campaign.config import load_config
from agi_campaign.db import database
from agi_campaign.deployment import ServiceLock, instance_name
from agi_campaign.engine import Engine
from agi_campaign.errors import ConfigError, StartupError
from agi_campaign.fastagi import FastAgiServer
from agi_campaign.heartbeat import HEARTBEAT_EVERY_S, SKEW_WARN_S, Heartbeat, clock_skew_s
from agi_campaign.httpserver import HttpServer
from agi_campaign.lifecycle import CampaignState
from agi_campaign.metrics import Metrics
from agi_campaign.models import IN_FLIGHT_STATUSES, Attempt, Campaign, open_database
from agi_campaign.pacing import Pacer
from agi_campaign.result_writer import BatchWriter
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder
from agi_campaign.routes import Router
from agi_campaign.webhook_delivery import Deliverer

log = logging.getLogger(__name__)

AMI_STARTUP_WAIT_S = 5.0
STOP_RESERVE_S = 3.0
ORPHAN_POLICY = RetryPolicy(max_attempts=1, retry_delay_s=0)  # see Service._policy_for


class Service:
    def __init__(self, config, clock=None, ami_factory=AmiClient, database_url=None):
        self.config = config
        self.clock = clock or SystemClock()
        self.ami_factory = ami_factory
        self.database_url = database_url or config.database.url
        self.stop_event = threading.Event()
        self.signals = 0
        self.fastagi = None
        self.scheduler = None
        self.amis = {}
        self.engine = None
        self.writer = None
        self.deliverer = None
        self.lock = None
        self.http = None
        self.metrics = Metrics()
        self.metrics.watch(self)
        self.notifier = systemd.Notifier.from_environ()
        self.watchdog = None
        self.instance = None
        self._orphans = set()
        self.heartbeat = None
        self.reload_wanted = threading.Event()
        self._wake = threading.Event()
        self._retired = {}  # campaigns a reload removed: {name: their last CampaignConfig}
        # built once: the result of every call reads its campaign's policy
        self._policies = {name: RetryPolicy.of(cfg) for name, cfg in config.campaigns.items()}

    # ---- start --------------------------------------------------------------------------
    def start(self):
        db = open_database(self.database_url)
        self.lock = ServiceLock(db)
        self.lock.acquire(self.clock.now())
        try:
            self._start()
        except BaseException:
            self.shutdown()
            raise
        self.notifier.ready()
        self.watchdog = systemd.start_watchdog(self.notifier, lambda: health.alive(self))

    def _start(self):
        self.instance = instance_name(self.config.service.instance)
        campaigns.sync_campaigns(self.config, self.clock.now())
        self.metrics.seed_attempts()
        self.writer = BatchWriter(database, metrics=self.metrics)
        self.writer.start()
        recorder = Recorder(self._policy_for, self.writer, webhook_for=self._webhook_for,
                            metrics=self.metrics)
        router = Router(self._on_connect_for, recorder, self.clock, self.instance,
                        amd_for=self._amd_for,
                        on_recorded=self._answered_recorded)
        fa = self.config.fastagi
        self.fastagi = FastAgiServer(fa.host, fa.port, self._with_db(router), allow=fa.allow,
                                     max_connections=fa.max_connections,
                                     max_line_bytes=fa.max_line_bytes)
        self.fastagi.start()
        self._start_amis()
        self.heartbeat = Heartbeat(self.instance, self.config.service.tick_ms)
        self.heartbeat.start(self.clock.now())
        skew = clock_skew_s(self.clock.now())
        if skew is not None and abs(skew) > SKEW_WARN_S:
            log.warning("this host's clock is %.2f s %s the database server's: nodes compare "
                        "each other's heartbeats on their own clocks; synchronise them (NTP)",
                        abs(skew), "ahead of" if skew > 0 else "behind")
        self.engine = Engine(self.config, self.clock, self.amis, recorder,
                             instance=self.instance, metrics=self.metrics,
                             node=self.heartbeat.row_id)
        for name, ami in self.amis.items():
            ami.add_listener(lambda ev, name=name: self._on_event(name, ev))
            ami.add_state_listener(lambda up, name=name: self.engine.on_ami_state(name, up))
            if not ami.connected:
                self.engine.on_ami_state(name, False)
        self.deliverer = Deliverer(self._webhook_for, list(self.config.campaigns), self.clock,
                                   node=self.heartbeat.row_id)     # its leases' holder
        self.deliverer.start()
        self.scheduler = jobs.start_scheduler(self.engine, list(self.config.campaigns),
                                              self.config.service.tick_ms / 1000.0,
                                              heartbeat=self._beat,
                                              heartbeat_s=HEARTBEAT_EVERY_S)
        if self.config.http is not None:
            from agi_campaign import dashboard

            self.http = HttpServer(dashboard.create_app(self), self.config.http.host,
                                   self.config.http.port)
            self.http.start()
        log.info("agi-campaign running: instance=%s fastagi=%s:%s servers=%s campaigns=%s",
                 self.instance, *self.fastagi.address, ",".join(self.amis),
                 ",".join(self.config.campaigns))

    @property
    def last_tick_m(self):
        """Monotonic time the scheduler's states tick last completed (None before the first)."""
        return self.engine.last_tick_m if self.engine is not None else None

    def _beat(self):
        self.heartbeat.beat(self.clock.now(), self.engine.last_tick_at)

    def _policy_for(self, name):
        """The retry rules of campaign `name` (a campaign a reload removed: its last ones). A
        campaign not in the config when the service started, while its calls were up: their
        results are recorded, and its numbers are not retried (there are no rules to retry them
        by); said once in the log."""
        policy = self._policies.get(name)
        if policy is None:
            if name not in self._orphans:
                self._orphans.add(name)
                log.warning("campaign %s is no longer in the config: results of its calls are "
                            "recorded, its numbers are not retried", name)
            return ORPHAN_POLICY
        return policy

    def _campaign(self, name):
        """Campaign `name`'s config, or the last one of a campaign a reload removed."""
        cfg = self.config.campaigns.get(name) or self._retired.get(name)
        if cfg is None:
            raise KeyError(name)
        return cfg

    def webhook_backlog(self):
        """{campaign: {"pending", "failed", "oldest_s"}} for the metrics (webhooks.backlog)."""
        with database.connection_context():
            return webhooks.backlog(self.clock.now())

    def _webhook_for(self, name):
        """The campaign's WebhookConfig (a campaign a reload removed: its last one, so the
        results of its calls still in flight get their events); None when it has none."""
        cfg = self.config.campaigns.get(name) or self._retired.get(name)
        return cfg.webhook if cfg is not None else None

    def _on_connect_for(self, name):
        return self._campaign(name).on_connect

    def _amd_for(self, name):
        return self._campaign(name).amd

    # ---- reload -------------------------------------------------------------------------
    def reload(self):
        """Re-read the config file and apply it (module docstring); returns (ok, text), also
        recorded in the heartbeat. Runs on the main loop's thread, never in a signal handler."""
        now = self.clock.now()
        try:
            plan = reloadplan.plan(self.config, load_config(self.config.path, need_secrets=True))
        except ConfigError as err:
            log.error("reload refused, the running config stays: %s", err)
            return self._reloaded(now, False, str(err))
        for key in plan.kept:
            log.warning("reload: %s changed; it needs a restart, the running value stays", key)
        tick_s = plan.config.service.tick_ms / 1000.0
        try:
            with database.connection_context():
                campaigns.sync_campaigns(plan.config, now)
                for name in plan.removed:
                    self._pause_removed(name, now)
        except (peewee.OperationalError, peewee.InterfaceError) as err:
            # the rows of new campaigns may be there: harmless, only configured ones dial
            text = ("reload not applied: the database refused its writes (%s); the running "
                    "config stays, reload again once the database answers"
                    % (str(err).strip().splitlines() or ["?"])[0])
            log.error("%s", text)
            return self._reloaded(now, False, text)
        for name in plan.removed:
            jobs.remove_campaign(self.scheduler, name)
        for name in plan.added:
            self.engine.pacers.setdefault(name, Pacer(self.clock.monotonic))
            self._retired.pop(name, None)
        self._retired.update({name: self.config.campaigns[name] for name in plan.removed})
        policies = {name: RetryPolicy.of(cfg) for name, cfg in plan.config.campaigns.items()}
        policies.update({name: RetryPolicy.of(cfg) for name, cfg in self._retired.items()})
        self._policies = policies
        self.config = self.engine.config = plan.config
        for name in plan.added:
            jobs.add_campaign(self.scheduler, self.engine, name, tick_s)
        if self.deliverer is not None:
            self.deliverer.add(list(plan.config.campaigns))   # campaigns that got a webhook
        log.info("reload applied: %s", plan.summary())
        return self._reloaded(now, True, plan.summary())

    def _pause_removed(self, name, now):
        """PAUSE a campaign a reload removed (unless it is completed or paused already)."""
        active = (CampaignState.READY.value, CampaignState.STARTNOW.value,
                  CampaignState.RUNNING.value)
        for _ in range(3):  # the states tick may move it meanwhile: read it again
            row = Campaign.get_or_none(Campaign.name == name)
            if row is None or row.state not in active:
                return
            if campaigns.move(row, CampaignState.PAUSED, "removed from the config", now,
                              expect=row.state):
                return

    def _reloaded(self, now, ok, text):
        try:
            self.heartbeat.record_reload(now, ok, text)
        except Exception:  # boundary: the reload happened; its record is best effort
            log.exception("reload outcome not recorded in the heartbeat")
        return ok, text

    @staticmethod
    def _with_db(handler):
        """Close the session thread's connection, if it opened one, when the session ends.

        Lazy (autoconnect): a `result` session writes through the BatchWriter and never
        touches the database in its own thread, so it costs no pool checkout.
        """
        def run(channel):
            try:
                handler(channel)
            finally:
                if not database.is_closed():
                    database.close()
        return run

    def _start_amis(self):
        for name, srv in self.config.servers.items():
            client = self.ami_factory(name=name, host=srv.ami_host, port=srv.ami_port,
                                      username=srv.ami_username, secret=srv.ami_secret)
            client.start()
            self.amis[name] = client
        up = [n for n, c in self.amis.items() if c.wait_connected(AMI_STARTUP_WAIT_S)]
        down = [n for n in self.amis if n not in up]
        if not up:
            reasons = "; ".join("%s (%s:%s): %s" % (n, self.config.servers[n].ami_host,
                                                     self.config.servers[n].ami_port,
                                                     _reason(self.amis[n])) for n in down)
            raise StartupError("no Asterisk server accepted our AMI login: %s; check that "
                               "Asterisk runs and servers.<name>.ami in the config" % reasons)
        for name in down:
            log.error("server=%s AMI not connected yet (%s); its campaigns wait, retrying",
                      name, _reason(self.amis[name]))

    def _on_event(self, name, event):
        self.engine.on_ami_event(name, event)  # in memory: no database work per AMI event

    # ---- run and stop -------------------------------------------------------------------
    def install_signal_handlers(self):
        """The first SIGTERM/SIGINT sets a flag (the main loop stops gracefully); the second
        exits at once with status 1, whatever the main loop is waiting for. SIGHUP sets the
        reload flag (the main loop reloads)."""
        def handler(signum, frame):
            self.signals += 1
            self.stop_event.set()
            self._wake.set()
            if self.signals >= 2:
                os.write(2, b"agi-campaign: second signal, exiting at once\n")
                os._exit(1)

        def hangup(signum, frame):
            self.reload_wanted.set()
            self._wake.set()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGHUP, hangup)

    def run_forever(self, on_idle=None):
        """Block until a stop signal, reloading on SIGHUP; then stop gracefully (or at once on
        a second signal). A reload requested while stopping is not done."""
        while not self.stop_event.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self.reload_wanted.is_set() and not self.stop_event.is_set():
                self.reload_wanted.clear()
                try:
                    self.reload()
                except Exception:  # boundary: a failed reload never stops the service
                    log.exception("reload failed; the running config stays")
            if on_idle and not self.stop_event.is_set():
                on_idle()
        self.stop(graceful=True, watchdog=True)

    def in_flight(self):
        """This node's calls in flight (other nodes' are theirs to wait for)."""
        query = Attempt.select().where(Attempt.status.in_(IN_FLIGHT_STATUSES))
        if self.engine is not None and self.engine.node is not None:
            query = query.where(Attempt.node == self.engine.node)
        with database.connection_context():
            return query.count()

    def stop(self, graceful=True, watchdog=False):
        """Stop within service.stop_deadline_s (see the module docstring). `watchdog` ends the
        process (status 1) at the deadline if closing hangs: for `run`, not for tests."""
        deadline_s = self.config.service.stop_deadline_s
        if watchdog:
            timer = threading.Timer(max(deadline_s, STOP_RESERVE_S), _exit_now,
                                    args=(deadline_s,))
            timer.daemon = True
            timer.start()
        self._stop_notifying()
        log.info("stopping: no new calls%s", " (stop_deadline_s %ss)" % deadline_s
                 if graceful else "")
        if self.engine is not None:
            self.engine.draining = True
        if self.scheduler is not None:
            self.scheduler.pause()
        if graceful:
            deadline = self.clock.monotonic() + max(deadline_s - STOP_RESERVE_S, 0)
            left = self.in_flight()
            while left and self.clock.monotonic() < deadline:
                log.info("stopping: waiting for %d call(s) in flight", left)
                self._beat_while_stopping()
                threading.Event().wait(min(0.5, max(deadline - self.clock.monotonic(), 0)))
                left = self.in_flight()
            if left:
                log.warning("stopping with %d call(s) still up: they go on in Asterisk and are "
                            "recovered at the next start", left)
        self.shutdown()

    def _answered_recorded(self, attempt_id, token, outcome):
        """Router's on_recorded. A call answered before the engine exists (FastAGI starts first:
        calls of the previous run may still ring) is left to reconcile, which ends it from its
        row once its channel is gone."""
        if self.engine is not None:
            self.engine.answered_recorded(attempt_id, token, outcome)

    def _beat_while_stopping(self):
        """The scheduler (and its heartbeat and reaping jobs) is paused while calls drain:
        beat and reap from here, so `status` still shows the service running until it has
        stopped and calls that ended are not kept in flight (engine.reap_failed_originates)."""
        if self.heartbeat is not None and self.engine is not None:
            try:
                self._beat()
                self.engine.reap_failed_originates()
            except Exception:  # boundary: stopping goes on without the database
                log.debug("heartbeat or reaping while stopping failed", exc_info=True)

    def _stop_notifying(self):
        self.notifier.stopping()
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None

    def shutdown(self):
        """Close everything, results first: the writer is flushed before the HTTP server and
        the webhook threads get their (bounded) time, within STOP_RESERVE_S."""
        self._stop_notifying()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        for client in self.amis.values():
            client.stop()
        if self.fastagi is not None:
            self.fastagi.stop()
            self.fastagi = None
        if self.writer is not None:
            self.writer.stop()
            self.writer = None
        if self.heartbeat is not None:
            try:
                self.heartbeat.stop(self.clock.now())
            except Exception:  # boundary: stopping goes on without the database
                log.warning("the heartbeat could not be marked stopped", exc_info=True)
            self.heartbeat = None
        if self.deliverer is not None:
            self.deliverer.stop()
            self.deliverer = None
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        log.info("agi-campaign stopped")


def _exit_now(deadline_s):
    os.write(2, ("agi-campaign: not stopped within stop_deadline_s (%ss); exiting\n"
                 % deadline_s).encode())
    os._exit(1)


def _reason(client):
    return str(getattr(client, "last_error", None) or "not connected")
