"""`agi-campaign run`: the FastAGI server and the scheduler in one process.

Start-up order: database (tables created), campaigns synced from YAML, FastAGI server listening
(so that results of calls still running from a previous run can come in), AMI connections, then
the APScheduler jobs. Start-up fails with one clear line when the database is unwritable, the
FastAGI port is taken, or no Asterisk server accepts our AMI login; a server that is down while
others are up is logged and retried with backoff, and its campaigns wait.

Stop: the first SIGTERM/SIGINT stops new calls and waits up to service.stop_deadline_s for calls
in flight to end and be recorded, then exits 0; a second signal exits at once (recovery at the
next start covers what was cut).
"""
import logging
import signal
import threading

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from agi_campaign import campaigns
from agi_campaign.ami import AmiClient
from agi_campaign.clock import SystemClock
from agi_campaign.db import database, open_database
from agi_campaign.engine import Engine
from agi_campaign.errors import StartupError
from agi_campaign.fastagi import FastAgiServer
from agi_campaign.models import IN_FLIGHT_STATUSES, Attempt
from agi_campaign.results import Recorder, RetryPolicy
from agi_campaign.routes import Router
from agi_campaign.writer import BatchWriter

log = logging.getLogger(__name__)

AMI_STARTUP_WAIT_S = 5.0
RECONCILE_EVERY_S = 5.0


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

    # ---- start --------------------------------------------------------------------------
    def start(self):
        open_database(self.database_url)
        campaigns.sync_campaigns(self.config, self.clock.now())
        self.writer = BatchWriter(database)
        self.writer.start()
        recorder = Recorder(self._policy_for, self.writer)
        router = Router(self._on_connect_for, recorder, self.clock)
        fa = self.config.fastagi
        self.fastagi = FastAgiServer(fa.host, fa.port, self._with_db(router), allow=fa.allow,
                                     max_connections=fa.max_connections,
                                     max_line_bytes=fa.max_line_bytes)
        self.fastagi.start()
        try:
            self._start_amis()
            self.engine = Engine(self.config, self.clock, self.amis, recorder)
            for name, ami in self.amis.items():
                ami.add_listener(lambda ev, name=name: self._on_event(name, ev))
                ami.add_state_listener(
                    lambda up, name=name: self.engine.on_ami_state(name, up))
            self._start_scheduler()
        except BaseException:
            self.shutdown()
            raise
        log.info("agi-campaign running: fastagi=%s:%s servers=%s campaigns=%s",
                 *self.fastagi.address, ",".join(self.amis), ",".join(self.config.campaigns))

    def _policy_for(self, name):
        cfg = self.config.campaigns.get(name)
        if cfg is None:
            return RetryPolicy(max_attempts=1, retry_delay_s=0)
        return RetryPolicy(cfg.max_attempts, cfg.retry_delay_s)

    def _on_connect_for(self, name):
        return self.config.campaigns[name].on_connect

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

    def _job(self, fn, *args):
        def run():
            try:
                with database.connection_context():
                    fn(*args)
            except Exception:  # boundary: a scheduler job logs and goes on
                log.exception("job %s failed", getattr(fn, "__name__", fn))
        return run

    def _start_scheduler(self):
        tick = self.config.service.tick_ms / 1000.0
        workers = len(self.config.campaigns) + 4
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self.scheduler.add_job(self._job(self.engine.tick_states), "interval", seconds=tick,
                               id="states")
        for name in self.config.campaigns:
            self.scheduler.add_job(self._job(self.engine.dial, name), "interval", seconds=tick,
                                   id="dial:" + name)
        self.scheduler.add_job(self._job(self.engine.reconcile), "interval",
                               seconds=RECONCILE_EVERY_S, id="reconcile")
        self.scheduler.start()

    # ---- run and stop -------------------------------------------------------------------
    def install_signal_handlers(self):
        """Signal handlers only set flags (the main loop does the work)."""
        def handler(signum, frame):
            self.signals += 1
            self.stop_event.set()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run_forever(self, on_idle=None):
        """Block until a signal; then stop gracefully (or at once on a second signal)."""
        while not self.stop_event.wait(0.5):
            if on_idle:
                on_idle()
        self.stop(graceful=True)

    def in_flight(self):
        with database.connection_context():
            return Attempt.select().where(Attempt.status.in_(IN_FLIGHT_STATUSES)).count()

    def stop(self, graceful=True):
        if self.engine is not None:
            self.engine.draining = True
        if self.scheduler is not None:
            self.scheduler.pause()
        if graceful:
            deadline = self.clock.monotonic() + self.config.service.stop_deadline_s
            while self.signals < 2 and self.clock.monotonic() < deadline:
                left = self.in_flight()
                if not left:
                    break
                log.info("stopping: waiting for %d call(s) in flight", left)
                threading.Event().wait(0.5)
        self.shutdown()

    def shutdown(self):
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
        log.info("agi-campaign stopped")


def _reason(client):
    return str(getattr(client, "last_error", None) or "not connected")
