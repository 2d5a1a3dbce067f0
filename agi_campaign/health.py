"""Health of the running service: `/readyz` (readiness) and the systemd watchdog (liveness).

`readiness(service)` -> (ready, checks); checks is {name: {"ok": bool, "detail": str}}:

- `database`: `SELECT 1` answers within DB_TIMEOUT_S (run in a probe thread, so a database
  that hangs makes the check fail after that time instead of hanging the request; while one
  probe hangs, later checks wait on the same probe rather than starting more);
- `scheduler`: the engine's last completed states tick (`Engine.last_tick_m`) is younger than
  max(TICK_STALE_MIN_S, TICK_STALE_TICKS ticks); it also fails before the first tick and while
  the service stops (the scheduler is paused then);
- `ami:<server>`: that server's AMI connection is logged in.

Ready = database and scheduler ok and *at least one* server's AMI connected. One Asterisk
server down of several is reported (`"ok": false` on its check; `/readyz` says "degraded" with
200) but does not make the service unready: its campaigns wait while the others dial, and
a load balancer or orchestrator that took the node out or restarted it would not bring that
PBX back. With every server down, nothing can dial: 503.

`alive(service)`, for the systemd watchdog (agi_campaign.systemd): the scheduler runs its
states job, reaching the database or not. Neither AMI nor the database count: restarting the
dialer repairs neither a PBX nor a database, and the retries already ride out their outages.
"""
import threading
import time

from agi_campaign.db import database

DB_TIMEOUT_S = 2.0
TICK_STALE_MIN_S = 5.0
TICK_STALE_TICKS = 10


def readiness(service, db_timeout_s=DB_TIMEOUT_S):
    checks = {"database": _probe.check(db_timeout_s), "scheduler": scheduler_check(service)}
    ami_ok = []
    for name, ami in sorted(service.amis.items()):
        up = bool(ami.connected)
        ami_ok.append(up)
        checks["ami:" + name] = {"ok": up, "detail": "connected" if up else "not connected"}
    ready = checks["database"]["ok"] and checks["scheduler"]["ok"] and any(ami_ok)
    return ready, checks


def alive(service):
    """True while the scheduler runs its states job, whether the job reaches the database or
    not (the watchdog's condition): a database outage is ridden out by the jobs' and the
    result writer's retries, and a restart loop would not end it sooner; a wedged scheduler
    (or a job hung in a driver call) stops the pings."""
    engine = service.engine
    last = getattr(engine, "last_run_m", None)
    if engine is None or last is None:
        return False
    return service.clock.monotonic() - last <= max(TICK_STALE_MIN_S,
                                                   TICK_STALE_TICKS * engine.tick_s)


def scheduler_check(service):
    engine = service.engine
    last = getattr(engine, "last_tick_m", None)
    if engine is None or last is None:
        return {"ok": False, "detail": "no states tick completed yet"}
    limit = max(TICK_STALE_MIN_S, TICK_STALE_TICKS * engine.tick_s)
    age = service.clock.monotonic() - last
    if age > limit:
        return {"ok": False, "detail": "last states tick %.1f s ago (limit %.1f s)"
                % (age, limit)}
    return {"ok": True, "detail": "last states tick %.1f s ago" % max(age, 0.0)}


class DatabaseProbe:
    """`SELECT 1` on the bound database in a daemon thread, waited for at most `timeout_s`."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending = None  # (done Event, result box, monotonic start) of the running probe

    def check(self, timeout_s):
        with self._lock:
            if self._pending is None or self._pending[0].is_set():  # none running: a new one
                self._pending = (threading.Event(), {}, time.monotonic())
                threading.Thread(target=self._run, args=self._pending[:2], name="db-probe",
                                 daemon=True).start()
            done, box, began = self._pending
        if not done.wait(timeout_s):
            return {"ok": False, "detail": "SELECT 1 unanswered after %.1f s"
                    % (time.monotonic() - began)}
        return box["result"]

    @staticmethod
    def _run(done, box):
        try:
            with database.connection_context():
                database.execute_sql("SELECT 1").fetchone()
            box["result"] = {"ok": True, "detail": "reachable"}
        except Exception as err:  # boundary: any failure means not ready
            text = str(err).strip()
            box["result"] = {"ok": False, "detail": text.splitlines()[0] if text
                             else type(err).__name__}
        finally:
            done.set()


_probe = DatabaseProbe()  # one, as `database` is one: concurrent checks share a running probe
