"""Health (agi_campaign.health) through the real app's /readyz and /healthz: 200 when ready,
503 when the database, the scheduler or every AMI server fails; one server of several down is
"degraded" (200)."""
import socket
import threading
import types

import pytest
from fastapi.testclient import TestClient
from playhouse.pool import PooledPostgresqlDatabase

from agi_campaign import api, health
from agi_campaign.config import parse_config
from agi_campaign.db import database
from agi_campaign.metrics import Metrics

from tests.unit.support import CAMPAIGN, SERVER, FakeAmi, FakeClock

TOKEN = "t" * 24


@pytest.fixture
def service(monkeypatch):
    """What create_app and health read of a running service: config, clock, engine, amis."""
    monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", TOKEN)
    config = parse_config({"servers": {"main": SERVER, "second": SERVER}, "http": {},
                           "service": {"tick_ms": 200}, "dnc_lists": {"global": {}},
                           "campaigns": {"c1": dict(CAMPAIGN, server="main")}}, "test.yaml")
    clock = FakeClock()
    svc = types.SimpleNamespace(
        config=config, clock=clock, metrics=Metrics(),
        engine=types.SimpleNamespace(tick_s=0.2, last_tick_m=clock.monotonic(),
                                     last_run_m=clock.monotonic()),
        amis={"main": FakeAmi(), "second": FakeAmi()})
    return svc


def readyz(service):
    reply = TestClient(api.create_app(service)).get("/readyz")
    return reply.status_code, reply.json()


def test_health_ready_when_database_scheduler_and_ami_pass(db, service):
    code, body = readyz(service)
    assert (code, body["status"]) == (200, "ok"), body
    assert set(body["checks"]) == {"database", "scheduler", "ami:main", "ami:second"}
    assert all(c["ok"] for c in body["checks"].values())
    assert TestClient(api.create_app(service)).get("/healthz").json() == {"status": "ok"}


def test_health_one_ami_server_down_of_two_is_degraded_not_unready(db, service):
    service.amis["second"].connected = False
    code, body = readyz(service)
    assert (code, body["status"]) == (200, "degraded")
    assert body["checks"]["ami:second"] == {"ok": False, "detail": "not connected"}
    service.amis["main"].connected = False
    code, body = readyz(service)
    assert (code, body["status"]) == (503, "unavailable")


def test_health_scheduler_not_ticking_is_unready(db, service):
    service.clock.advance(4.9)  # limit: max(5 s, 10 ticks of 0.2 s)
    assert readyz(service)[0] == 200
    service.clock.advance(0.2)
    code, body = readyz(service)
    assert code == 503 and not body["checks"]["scheduler"]["ok"]
    assert "limit 5.0 s" in body["checks"]["scheduler"]["detail"]
    service.engine.last_tick_m = None
    code, body = readyz(service)
    assert code == 503 and body["checks"]["scheduler"]["detail"] == "no states tick completed yet"
    service.engine.last_tick_m = service.clock.monotonic()
    service.engine.last_run_m = service.clock.monotonic()
    assert health.alive(service)


def test_health_watchdog_alive_follows_the_states_job_not_the_database(db, service):
    """The watchdog's condition: the states job began within the limit, even one that failed
    on the database (its outage is ridden out, not turned into a restart loop)."""
    service.engine.last_tick_m = None            # no tick completed: the database is down
    assert health.alive(service) and readyz(service)[0] == 503
    service.clock.advance(5.1)                   # the job stopped running at all: wedged
    assert not health.alive(service)
    service.engine.last_run_m = service.clock.monotonic()
    assert health.alive(service)
    service.engine.last_run_m = None
    assert not health.alive(service)


@pytest.fixture
def database_at():
    """Bind the database proxy to a PostgreSQL URL on a local port for one test (restored)."""
    saved = database.obj

    def bind(port):
        target = PooledPostgresqlDatabase("x", host="127.0.0.1", port=port, user="x",
                                          connect_timeout=5, max_connections=None)
        database.initialize(target)
        return target
    yield bind
    database.initialize(saved)


def test_health_database_refusing_is_unready(service, database_at):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    database_at(port)
    code, body = readyz(service)
    assert code == 503 and not body["checks"]["database"]["ok"]
    assert "refused" in body["checks"]["database"]["detail"].lower()
    assert health.alive(service)        # the watchdog does not restart for a database outage


def test_health_database_not_answering_fails_within_the_timeout(service, database_at):
    """A server that accepts the connection and never answers: the check fails after its
    timeout instead of hanging the request; later checks share the one hanging probe."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        database_at(silent.getsockname()[1])
        ready, checks = health.readiness(service, db_timeout_s=0.3)
        assert not ready
        assert checks["database"]["detail"].startswith("SELECT 1 unanswered after")
        ready, checks = health.readiness(service, db_timeout_s=0.3)
        assert not ready and "unanswered" in checks["database"]["detail"]
        probes = [t for t in threading.enumerate() if t.name == "db-probe"]
        assert len(probes) == 1
    probes[0].join(10)  # the listener closed: the hanging connect fails, the probe ends
    assert not probes[0].is_alive()
