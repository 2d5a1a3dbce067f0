"""Readiness of the running service, for `/readyz` (and the systemd watchdog).

`readiness(service)` -> (ready, checks): checks is {name: {"ok": bool, "detail": str}} for the
database, the scheduler and each Asterisk server's AMI connection. (A first version: the
database and AMI checks; the scheduler check and the watchdog come with the metrics work.)
"""
from agi_campaign.db import database


def readiness(service):
    checks = {"database": _database_check()}
    for name, ami in service.amis.items():
        checks["ami:" + name] = {"ok": bool(ami.connected),
                                 "detail": "connected" if ami.connected else "not connected"}
    return all(c["ok"] for c in checks.values()), checks


def _database_check():
    try:
        with database.connection_context():
            database.execute_sql("SELECT 1").fetchone()
    except Exception as err:  # boundary: any failure means not ready
        return {"ok": False, "detail": str(err).strip().splitlines()[0] if str(err) else "error"}
    return {"ok": True, "detail": "reachable"}
