"""The claim gate (agi_campaign.gate through claim.claim_gated): every cap, on SQLite and
PostgreSQL, and concurrent claimers (one connection each, as several nodes) never exceeding
them."""
import datetime as dt
import threading

from agi_campaign import gate
from agi_campaign.claim import claim_gated
from agi_campaign.db import database
from agi_campaign.gate import Limits
from agi_campaign.models import Attempt, Campaign, Number

from tests.unit.support import T0, make_campaign, make_numbers


PAST = T0 - dt.timedelta(days=3650)  # due whatever the database's clock says


def running(name, server="main", count=20, start=0, due=T0):
    camp = make_campaign(name, server=server, state="running")
    make_numbers(camp, count, start=start, due=due)
    return camp


def claim(limits, n, at):
    """A claim at `at`, spacings kept on the same clock (on PostgreSQL too: the database's
    clock is test_gate_spacing_on_postgres_uses_the_database_clock's)."""
    return claim_gated(limits, n, lambda: at, (), 3, spacing_clock=lambda: at)


def end_all(campaign_id=None):
    query = Attempt.update(status="ended", outcome="answered")
    if campaign_id is not None:
        query = query.where(Attempt.campaign == campaign_id)
    query.execute()


def test_gate_share_and_spacing_arithmetic():
    assert gate.share(10, 0) == 10 and gate.share(10, 1) == 5 and gate.share(10, 2) == 4
    assert gate.spacing_wait(None, T0, 1) == 0.0
    assert gate.spacing_wait(T0 + dt.timedelta(seconds=0.25), T0, 1) == 0.25
    assert gate.spacing_wait(T0 - dt.timedelta(seconds=1), T0, 1) == 0.0
    # further ahead than any spacing asks: the clock stepped back since; no wait
    assert gate.spacing_wait(T0 + dt.timedelta(minutes=30), T0, 1) == 0.0


def test_gate_campaign_max_channels_counts_attempts_in_flight(db):
    camp = running("c1")
    limits = Limits(camp.id, max_channels=3, delay_ms=0, server="main")
    got, adm = claim(limits, 10, T0)
    assert len(got) == 3 and adm.allowed == 3
    got, adm = claim(limits, 10, T0)
    assert got == [] and adm.limited_by == "max_channels" and adm.allowed == 0
    end_all()
    assert len(claim(limits, 10, T0)[0]) == 3


def test_gate_delay_ms_spaces_starts_by_the_stored_last_start(db):
    camp = running("c1")
    limits = Limits(camp.id, max_channels=10, delay_ms=500, server="main")
    assert len(claim(limits, 5, T0)[0]) == 1  # one call per claim with a delay
    got, adm = claim(limits, 5, T0 + dt.timedelta(milliseconds=200))
    assert got == [] and adm.limited_by == "delay_ms" and abs(adm.wait_s - 0.3) < 1e-6
    assert len(claim(limits, 5, T0 + dt.timedelta(milliseconds=500))[0]) == 1
    stamps = [a.created_at for a in Attempt.select().order_by(Attempt.id)]
    assert (stamps[1] - stamps[0]).total_seconds() == 0.5


def test_gate_server_max_channels_holds_across_campaigns(db):
    a, b = running("a"), running("b", start=100)
    la = Limits(a.id, 10, 0, "main", server_max_channels=4)
    lb = Limits(b.id, 10, 0, "main", server_max_channels=4)
    assert len(claim(la, 10, T0)[0]) == 4
    got, adm = claim(lb, 10, T0)
    assert got == [] and adm.limited_by == "server max_channels"
    reasons = gate.blocked_reasons([a.id, b.id], T0)
    assert reasons == {b.id: "waiting for server main: its max_channels 4 are in use"}
    assert gate.blocked_reasons([b.id], T0 + dt.timedelta(seconds=11)) == {}  # stale
    end_all(a.id)
    assert len(claim(lb, 10, T0)[0]) == 4
    assert gate.blocked_reasons([b.id], T0) == {}  # cleared by the claim that passed


def test_gate_fair_share_keeps_a_backlog_from_starving_another_campaign(db):
    a, b = running("a", count=50), running("b", count=50, start=100)
    la = Limits(a.id, 10, 0, "main", server_max_channels=10, peers=((b.id, 10, 3),))
    lb = Limits(b.id, 10, 0, "main", server_max_channels=10, peers=((a.id, 10, 3),))
    got, adm = claim(la, 10, T0)
    assert len(got) == 5  # b waits with due numbers: a takes its share only
    got, adm = claim(la, 10, T0)
    assert got == [] and adm.limited_by == "server fair share"
    assert len(claim(lb, 10, T0)[0]) == 5
    # a lone campaign (b has nothing due) uses the whole server
    end_all()
    Campaign.update(state="paused").where(Campaign.id == b.id).execute()
    assert len(claim(la, 10, T0)[0]) == 10


def test_gate_max_cps_spaces_server_starts_and_alternates_between_campaigns(db):
    a, b = running("a"), running("b", start=100)
    la = Limits(a.id, 10, 0, "main", server_max_cps=4, peers=((b.id, 10, 3),))
    lb = Limits(b.id, 10, 0, "main", server_max_cps=4, peers=((a.id, 10, 3),))
    assert len(claim(la, 10, T0)[0]) == 1  # one call a claim: starts evenly spaced
    got, adm = claim(la, 10, T0 + dt.timedelta(milliseconds=100))
    assert got == [] and adm.limited_by == "server max_cps" and abs(adm.wait_s - 0.15) < 1e-6
    got, adm = claim(lb, 10, T0 + dt.timedelta(milliseconds=100))
    assert got == [] and adm.limited_by == "server max_cps"
    # at 250 ms it is b's turn: a, which started the last call, yields one interval
    got, adm = claim(la, 10, T0 + dt.timedelta(milliseconds=250))
    assert got == [] and adm.limited_by == "server fair share"
    assert len(claim(lb, 10, T0 + dt.timedelta(milliseconds=260))[0]) == 1
    assert len(claim(la, 10, T0 + dt.timedelta(milliseconds=510))[0]) == 1
    # b did not take its turn within a whole interval: a goes on
    assert len(claim(la, 10, T0 + dt.timedelta(milliseconds=1100))[0]) == 1


def test_gate_concurrent_claimers_never_exceed_any_cap(db):
    """Eight threads (eight connections, as eight nodes) claim for two campaigns sharing a
    server, each ending one of its own calls after every claim: recounted after every claim,
    the in-flight attempts never exceed a campaign's max_channels nor the server's."""
    a, b = running("a", count=300), running("b", count=300, start=1000)
    la = Limits(a.id, 6, 0, "main", server_max_channels=8, peers=((b.id, 6, 3),))
    lb = Limits(b.id, 6, 0, "main", server_max_channels=8, peers=((a.id, 6, 3),))
    seen, errors = [], []
    lock = threading.Lock()

    def claimer(limits):
        mine = []
        try:
            with database.connection_context():
                for _ in range(40):
                    mine += [c.attempt_id for c in claim(limits, 6, T0)[0]]
                    with database.atomic():
                        per = {cid: Attempt.select().where(
                            (Attempt.campaign == cid) & (Attempt.status == "dialing")).count()
                            for cid in (a.id, b.id)}
                    with lock:
                        seen.append(per)
                    if mine:
                        Attempt.update(status="ended").where(Attempt.id == mine.pop(0)).execute()
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=claimer, args=(la if i % 2 else lb,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert max(per[a.id] for per in seen) <= 6 and max(per[b.id] for per in seen) <= 6
    assert max(sum(per.values()) for per in seen) <= 8
    assert max(sum(per.values()) for per in seen) >= 6  # the caps were actually reached
    assert Attempt.select().count() > 16  # ended calls were replaced: the caps held in motion


def test_gate_spacing_on_postgres_uses_the_database_clock(db, db_url):
    """Two nodes whose clocks disagree by an hour: on PostgreSQL delay_ms is kept on the
    database's clock, so the second claim still waits; SQLite (one node) keeps the caller's."""
    camp = running("c1", due=PAST)
    limits = Limits(camp.id, max_channels=10, delay_ms=60000, server="main")
    assert len(claim_gated(limits, 5, lambda: T0, (), 3)[0]) == 1
    got, adm = claim_gated(limits, 5, lambda: T0 + dt.timedelta(hours=1), (), 3)
    if db_url.startswith("postgresql"):  # (a minute's delay: no stall between can end it)
        assert got == [] and adm.limited_by == "delay_ms" and 0 < adm.wait_s <= 60
    else:
        assert len(got) == 1


def test_gate_a_peer_that_cannot_start_now_takes_no_share(db):
    """Fair share counts only peers that could start a call now: b, inside its own delay_ms
    spacing, or with only numbers out of attempts, leaves the whole server to a."""
    a, b = running("a", count=50), running("b", count=50, start=100)
    lb = Limits(b.id, 10, 10000, "main", server_max_channels=10, peers=((a.id, 10, 3),))
    assert len(claim(lb, 10, T0)[0]) == 1               # b's next start: 10 s from now
    la = Limits(a.id, 10, 0, "main", server_max_channels=10, peers=((b.id, 10, 3),))
    assert len(claim(la, 10, T0 + dt.timedelta(seconds=1))[0]) == 9
    end_all()
    Number.update(attempts=3).where(Number.campaign == b.id).execute()
    assert len(claim(la, 10, T0 + dt.timedelta(seconds=20))[0]) == 10


def test_gate_a_claim_left_open_is_ended_by_postgres(db, db_url, monkeypatch):
    """A node frozen (or cut off) inside its claim holds the gate's rows only until
    PostgreSQL ends its idle transaction: the other nodes' claims then go on."""
    if not db_url.startswith("postgresql"):
        return  # SQLite: one node, one process: no other claimer to hold up
    monkeypatch.setattr(gate, "IDLE_IN_CLAIM_MS", 1500)  # < LOCK_TIMEOUT_MS: the wait ends
    camp = running("c1", due=PAST)
    limits = Limits(camp.id, max_channels=10, delay_ms=0, server="main")
    locked, done = threading.Event(), threading.Event()

    def frozen():
        try:
            with database.connection_context():
                with database.atomic():
                    gate.admit(limits, 1, lambda: T0)
                    locked.set()
                    done.wait(5)        # frozen with the gate's rows locked
        except Exception:  # its session was ended under it: what we want
            pass

    thread = threading.Thread(target=frozen)
    thread.start()
    assert locked.wait(10)
    got, _ = claim_gated(limits, 2, lambda: T0, (), 3)  # waits <= LOCK_TIMEOUT_MS for the lock
    done.set()
    thread.join(10)
    assert len(got) == 2


def test_gate_a_lock_held_past_the_lock_timeout_is_gate_busy_not_an_error(db, db_url,
                                                                          monkeypatch):
    if not db_url.startswith("postgresql"):
        return  # SQLite: one node, one process: no other claimer to wait for
    monkeypatch.setattr(gate, "LOCK_TIMEOUT_MS", 300)
    camp = running("c1", due=PAST)
    limits = Limits(camp.id, max_channels=10, delay_ms=0, server="main")
    locked, done = threading.Event(), threading.Event()

    def holder():
        with database.connection_context():
            with database.atomic():
                gate.admit(limits, 1, lambda: T0)
                locked.set()
                done.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert locked.wait(10)
        got, adm = claim_gated(limits, 2, lambda: T0, (), 3)
        assert got == [] and adm.limited_by == "gate busy" and adm.allowed == 0
    finally:
        done.set()
        thread.join(10)
    assert len(claim_gated(limits, 2, lambda: T0, (), 3)[0]) == 2  # free again
