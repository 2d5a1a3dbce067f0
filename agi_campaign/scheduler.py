"""The service's APScheduler wiring: which jobs run, how often, and what happens when a tick
is late, overlaps the previous one, or fails.

Jobs (all on one BackgroundScheduler, a thread pool of one worker per campaign plus four):
- `states` every tick (`service.tick_ms`): `Engine.tick_states` (automatic state moves);
- `dial:<campaign>` every tick, one job per campaign: `Engine.dial(name)`, so one campaign's
  delay_ms never holds up another;
- `reconcile` every RECONCILE_EVERY_S: `Engine.reconcile`;
- `heartbeat` every `heartbeat_s` when given (agi_campaign.heartbeat).

A live reload adds `dial:<campaign>` jobs (`add_campaign`, on an executor of their own: the
pool's size is fixed at start) and removes those of removed campaigns (`remove_campaign`).

Policy:
- Overlap: at most one run of a job at a time (`max_instances=1`). A tick due while the previous
  one still runs (a dial tick spacing calls, a slow reconcile) is skipped: that is normal, not a
  fault, and APScheduler's warning for it is dropped.
- Misfire: late runs are coalesced into one and never dropped (`coalesce=True`,
  `misfire_grace_time=None`): after a pause the next tick simply runs.
- Failure: a job logs and goes on; each run has its own pooled database connection. While the
  database is unreachable a job logs one WARNING for the outage (not a traceback every tick)
  and one INFO when it is back.
"""
import logging

import peewee
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from agi_campaign.db import database

log = logging.getLogger(__name__)

RECONCILE_EVERY_S = 5.0
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


def start_scheduler(engine, campaign_names, tick_s, heartbeat=None, heartbeat_s=1.0):
    """A started BackgroundScheduler running `engine`'s jobs and `heartbeat()` (see the module
    docstring)."""
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(len(campaign_names) + 4)},
        job_defaults=JOB_DEFAULTS, logger=scheduler_logger())
    scheduler.add_job(job(engine.tick_states), "interval", seconds=tick_s, id="states")
    for name in campaign_names:
        scheduler.add_job(job(engine.dial, name), "interval", seconds=tick_s, id="dial:" + name)
    scheduler.add_job(job(engine.reconcile), "interval", seconds=RECONCILE_EVERY_S,
                      id="reconcile")
    if heartbeat is not None:
        scheduler.add_job(job(heartbeat), "interval", seconds=heartbeat_s, id="heartbeat")
    scheduler.start()
    return scheduler


def add_campaign(scheduler, engine, name, tick_s):
    """The `dial:<name>` job of a campaign added by a reload, on its own one-worker executor."""
    alias = "dial:" + name
    try:
        scheduler.add_executor(ThreadPoolExecutor(1), alias)
    except ValueError:  # re-added after a removal: its executor was kept
        pass
    scheduler.add_job(job(engine.dial, name), "interval", seconds=tick_s, id=alias,
                      executor=alias, replace_existing=True)


def remove_campaign(scheduler, name):
    """Remove the `dial:<name>` job (a run in progress finishes)."""
    if scheduler.get_job("dial:" + name) is not None:
        scheduler.remove_job("dial:" + name)


def job(fn, *args):
    """`fn(*args)` as a scheduler job: in a connection context, logging instead of raising."""
    name = getattr(fn, "__name__", str(fn))
    failed = 0

    def run():
        nonlocal failed
        try:
            with database.connection_context():  # a broken connection is not pooled again
                fn(*args)
        except (peewee.OperationalError, peewee.InterfaceError) as err:
            if not failed:
                log.warning("job %s: database unreachable (%s); retrying every tick", name,
                            (str(err).strip().splitlines() or ["?"])[0])
            failed += 1
            return
        except Exception:  # boundary: a scheduler job logs and goes on
            log.exception("job %s failed", name)
        if failed:
            log.info("job %s: database reachable again after %d failed run(s)", name, failed)
            failed = 0
    return run


class _OverlapFilter(logging.Filter):
    """Drops APScheduler's warning for a run skipped because the previous one still runs."""

    def filter(self, record):
        return "maximum number of running instances reached" not in record.getMessage()


def scheduler_logger():
    """The logger APScheduler reports on, without the overlap warning."""
    logger = logging.getLogger("apscheduler.scheduler.agi_campaign")
    if not any(isinstance(f, _OverlapFilter) for f in logger.filters):
        logger.addFilter(_OverlapFilter())
    return logger
