"""`agi-campaign run`: the FastAGI server and the scheduler in one process.

Start-up order: database (tables created), campaigns synced from YAML, FastAGI server listening
(so that results of calls still running from a previous run can come in), AMI connections, the
APScheduler jobs, then the HTTP server (`http:` section; agi_campaign.api), the last to stop. Start-up fails with one clear line when the database is unwritable, the
FastAGI port is taken, or no Asterisk server accepts our AMI login; a server that is down while
others are up is logged and retried with backoff, and its campaigns wait.

One service per database: a second `run` on the same database refuses to start, naming the
first (agi_campaign.deployment.ServiceLock).

Stop: the first SIGTERM/SIGINT stops new calls and waits for calls in flight to end and be
recorded; whatever is still up then (a long queue or conference call) keeps running on Asterisk
and is recovered at the next start (its result reaches the next service by FastAGI, or is read
from AstDB). The whole stop takes at most service.stop_deadline_s: the wait ends
STOP_RESERVE_S before it, leaving that time to close connections, and a watchdog ends the
process at the deadline if closing hangs (a stuck database). FastAGI sessions run in daemon
threads, so no call holds the exit. A second signal exits at once with status 1, as SIGKILL
would (recovery at the next start covers what was cut).

The scheduler's jobs and their overlap, misfire and failure policy: agi_campaign.scheduler.

Under systemd (`Type=notify`, agi_campaign.systemd) the service sends READY=1 once started,
WATCHDOG=1 while agi_campaign.health.alive holds, and STOPPING=1 when it begins to stop.
Metrics (agi_campaign.metrics): the attempts counter is seeded from the database before the
result writer starts; the recorder, engine and writer observe the rest.
"""
import logging
import os
import signal
import threading

from agi_campaign import campaigns, health, systemd
from agi_campaign.ami import AmiClient
from agi_campaign.clock import SystemClock
from agi_campaign.db import database
from agi_campaign.deployment import ServiceLock, instance_name
from agi_campaign.engine import Engine
from agi_campaign.errors import StartupError
from agi_campaign.fastagi import FastAgiServer
from agi_campaign.httpserver import HttpServer
from agi_campaign.metrics import Metrics
from agi_campaign.models import IN_FLIGHT_STATUSES, Attempt, open_database
from agi_campaign.result_writer import BatchWriter
from agi_campaign.results import Recorder, RetryPolicy
from agi_campaign.routes import Router
from agi_campaign.scheduler import start_scheduler

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
        self.lock = None
        self.http = None
        self.metrics = Metrics()
        self.metrics.watch(self)
        # {campaign: {"pending", "failed", "oldest_s"}} for the metrics (agi_campaign.webhooks)
        self.webhook_backlog = lambda: {}
        self.notifier = systemd.Notifier.from_environ()
        self.watchdog = None
        self.instance = None
        self._orphans = set()
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
        recorder = Recorder(self._policy_for, self.writer, metrics=self.metrics)
        router = Router(self._on_connect_for, recorder, self.clock, self.instance,
                        amd_for=self._amd_for)
        fa = self.config.fastagi
        self.fastagi = FastAgiServer(fa.host, fa.port, self._with_db(router), allow=fa.allow,
                                     max_connections=fa.max_connections,
                                     max_line_bytes=fa.max_line_bytes)
        self.fastagi.start()
        self._start_amis()
        self.engine = Engine(self.config, self.clock, self.amis, recorder,
                             instance=self.instance, metrics=self.metrics)
        for name, ami in self.amis.items():
            ami.add_listener(lambda ev, name=name: self._on_event(name, ev))
            ami.add_state_listener(lambda up, name=name: self.engine.on_ami_state(name, up))
            if not ami.connected:
                self.engine.on_ami_state(name, False)
        self.scheduler = start_scheduler(self.engine, list(self.config.campaigns),
                                         self.config.service.tick_ms / 1000.0)
        if self.config.http is not None:
            from agi_campaign import api

            self.http = HttpServer(api.create_app(self), self.config.http.host,
                                   self.config.http.port)
            self.http.start()
        log.info("agi-campaign running: instance=%s fastagi=%s:%s servers=%s campaigns=%s",
                 self.instance, *self.fastagi.address, ",".join(self.amis),
                 ",".join(self.config.campaigns))

    def _policy_for(self, name):
        """The retry rules of campaign `name`. A campaign removed from the config while its
        calls were up: their results are recorded, and its numbers are not retried (there are
        no rules to retry them by); said once in the log."""
        policy = self._policies.get(name)
        if policy is None:
            if name not in self._orphans:
                self._orphans.add(name)
                log.warning("campaign %s is no longer in the config: results of its calls are "
                            "recorded, its numbers are not retried", name)
            return ORPHAN_POLICY
        return policy

    def _on_connect_for(self, name):
        return self.config.campaigns[name].on_connect

    def _amd_for(self, name):
        return self.config.campaigns[name].amd

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
        """The first signal sets a flag (the main loop stops gracefully); the second exits at
        once with status 1, whatever the main loop is waiting for."""
        def handler(signum, frame):
            self.signals += 1
            self.stop_event.set()
            if self.signals >= 2:
                os.write(2, b"agi-campaign: second signal, exiting at once\n")
                os._exit(1)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run_forever(self, on_idle=None):
        """Block until a signal; then stop gracefully (or at once on a second signal)."""
        while not self.stop_event.wait(0.5):
            if on_idle:
                on_idle()
        self.stop(graceful=True, watchdog=True)

    def in_flight(self):
        with database.connection_context():
            return Attempt.select().where(Attempt.status.in_(IN_FLIGHT_STATUSES)).count()

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
                threading.Event().wait(min(0.5, max(deadline - self.clock.monotonic(), 0)))
                left = self.in_flight()
            if left:
                log.warning("stopping with %d call(s) still up: they go on in Asterisk and are "
                            "recovered at the next start", left)
        self.shutdown()

    def _stop_notifying(self):
        self.notifier.stopping()
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None

    def shutdown(self):
        self._stop_notifying()
        if self.http is not None:
            self.http.stop()
            self.http = None
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
