"""The scheduler: an overlapping tick is normal and is not reported as a warning."""
import logging
import threading
import time

from apscheduler.schedulers.background import BackgroundScheduler

from agi_campaign.scheduler import scheduler_logger


def test_scheduler_overlapping_tick_is_not_a_warning(caplog):
    caplog.set_level(logging.DEBUG)
    release = threading.Event()
    runs = []

    def slow_tick():  # a dial tick still running when the next one is due
        runs.append(1)
        release.wait(5)

    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1,
                                                  "misfire_grace_time": None},
                                    logger=scheduler_logger())
    scheduler.add_job(slow_tick, "interval", seconds=0.05, id="dial:x")
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while not runs and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # ten more ticks come due while the first still runs
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    assert runs
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]
