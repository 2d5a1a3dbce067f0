"""Leases (agi_campaign.lease) on SQLite and PostgreSQL: acquire, renew, refusal while valid,
takeover after expiry (epoch + 1), release, the trust window from the renewal's start, and a
database error read as "not trusted". Monotonic time is a FakeClock's; the database's time is
real on PostgreSQL (clock_timestamp()) and the FakeClock's now on SQLite."""
import logging
import time

import pytest

from agi_campaign import lease as lease_mod
from agi_campaign.db import database
from agi_campaign.lease import MARGIN_S, RENEW_FRACTION, Lease, claim, expire_all, holders

from tests.unit.support import T0, FakeClock

NAME = "webhooks:1"


def test_lease_acquired_then_renewed_by_its_holder(db):
    clock = FakeClock(T0)
    a = Lease(NAME, 1, 30, clock)
    assert a.hold() and a.epoch == 1
    assert a.trusted_for() == pytest.approx(30 - MARGIN_S)
    clock.advance(30 / RENEW_FRACTION)          # due: renewed, trust counted again
    assert a.hold() and a.epoch == 1
    assert a.trusted_for() == pytest.approx(30 - MARGIN_S)
    (holder, expires_at), = holders("webhooks:").values()
    assert holder == 1 and expires_at.tzinfo is not None


def test_lease_not_renewed_before_it_is_due(db, monkeypatch):
    clock = FakeClock(T0)
    a = Lease(NAME, 1, 30, clock)
    assert a.hold()
    calls = []
    monkeypatch.setattr(lease_mod, "claim", lambda *args: calls.append(args))
    clock.advance(30 / RENEW_FRACTION - 1)
    assert a.hold() and calls == []             # trusted, not due: no statement
    assert not a.hold(for_s=25)                 # a caller needing more forces a renewal
    assert len(calls) == 1


def test_lease_a_second_holder_is_refused_while_it_is_valid(db):
    clock = FakeClock(T0)
    assert Lease(NAME, 1, 30, clock).hold()
    b = Lease(NAME, 2, 30, clock)
    assert not b.hold() and b.trusted_for() == 0
    assert claim(NAME, 2, 30, clock.now()) is None
    assert holders()[NAME][0] == 1


def test_lease_taken_over_after_expiry_with_the_next_epoch(db):
    clock = FakeClock(T0)
    a = Lease(NAME, 1, 0.5, clock, margin_s=0.1)
    assert a.hold() and a.epoch == 1
    clock.advance(1)        # SQLite's now
    time.sleep(0.6)         # PostgreSQL's clock_timestamp()
    b = Lease(NAME, 2, 30, clock)
    assert b.hold() and b.epoch == 2
    assert not a.hold()     # the old holder's renewal is refused
    assert a.trusted_for() == 0 and holders()[NAME][0] == 2


def test_lease_release_hands_over_at_once(db):
    clock = FakeClock(T0)
    a, b = Lease(NAME, 1, 60, clock), Lease(NAME, 2, 60, clock)
    assert a.hold() and not b.hold()
    b.release()                     # not the holder: changes nothing
    assert not b.hold()
    a.release()
    assert a.trusted_for() == 0
    assert b.hold() and b.epoch == 2


def test_lease_trust_counts_from_the_start_of_the_renewal(db, monkeypatch):
    """A renewal that takes 5 s leaves ttl - margin - 5 s of trust; one that takes longer than
    ttl - margin leaves none, although the database granted the lease."""
    clock = FakeClock(T0)
    real = lease_mod.claim

    def slow_claim(*args, took):
        granted = real(*args)
        clock.advance(took)
        return granted

    a = Lease(NAME, 1, 30, clock)
    monkeypatch.setattr(lease_mod, "claim", lambda *args: slow_claim(*args, took=5))
    assert a.hold()
    assert a.trusted_for() == pytest.approx(30 - MARGIN_S - 5)
    monkeypatch.setattr(lease_mod, "claim", lambda *args: slow_claim(*args, took=30))
    clock.advance(10)
    assert not a.hold() and a.trusted_for() == 0
    assert holders()[NAME][0] == 1       # granted all the same: not trusted beyond the grant


def test_lease_trust_uses_the_ttl_granted_not_a_longer_new_one(db):
    clock = FakeClock(T0)
    a = Lease(NAME, 1, 20, clock)
    assert a.hold()
    a.ttl_s = 200                       # changed (a reload): the grant in force is still 20 s
    assert a.trusted_for() == pytest.approx(20 - MARGIN_S)


def test_lease_database_error_means_not_trusted_logged_once(db, caplog):
    clock = FakeClock(T0)
    a = Lease(NAME, 1, 30, clock)
    assert a.hold()
    with database.connection_context():
        database.execute_sql("DROP TABLE lease")
    clock.advance(30 / RENEW_FRACTION)
    with caplog.at_level(logging.INFO, logger="agi_campaign.lease"):
        assert not a.hold() and a.trusted_for() == 0
        assert not a.hold()
        a.release()                     # logged, not raised
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(": ")[0] for r in warnings] == [
        "lease=webhooks:1 node=1 not renewed, so not trusted",
        "lease=webhooks:1 node=1 not released (it expires within 30 s)"]


def test_lease_expire_all_frees_the_leases_of_a_prefix_only(db):
    clock = FakeClock(T0)
    for name in ("webhooks:1", "webhooks:2", "other:1"):
        assert Lease(name, 1, 60, clock).hold()
    assert sorted(holders("webhooks:")) == ["webhooks:1", "webhooks:2"]
    expire_all("webhooks:", clock.now())
    assert Lease("webhooks:1", 2, 60, clock).hold()
    assert Lease("webhooks:2", 2, 60, clock).hold()
    assert not Lease("other:1", 2, 60, clock).hold()
