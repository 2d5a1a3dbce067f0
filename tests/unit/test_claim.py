import datetime as dt
import threading

from agi_campaign.claim import claim_due
from agi_campaign.clock import to_db
from agi_campaign.db import database
from agi_campaign.models import Attempt, DncEntry, Number

from tests.unit.support import T0, make_campaign, make_numbers


def test_claim_takes_due_numbers_in_order_and_records_attempts(db):
    camp = make_campaign()
    phones = make_numbers(camp, 5)
    Number.update(next_attempt_at=to_db(T0 + dt.timedelta(hours=1))).where(
        Number.phone == phones[0]).execute()
    claimed = claim_due(camp.id, 3, T0, "main", (), max_attempts=3)
    assert [c.phone for c in claimed] == phones[1:4]
    assert all(c.seq == 1 and len(c.token) == 16 for c in claimed)
    rows = {n.phone: n for n in Number.select()}
    assert [rows[p].status for p in phones] == ["pending", "in_flight", "in_flight",
                                                "in_flight", "pending"]
    assert rows[phones[1]].attempts == 1
    atts = list(Attempt.select().order_by(Attempt.id))
    assert [(a.id, a.token, a.status, a.server) for a in atts] == [
        (c.attempt_id, c.token, "dialing", "main") for c in claimed]


def test_claim_skips_exhausted_and_not_yet_due(db):
    camp = make_campaign()
    make_numbers(camp, 2)
    Number.update(attempts=3).where(Number.id == Number.select(Number.id).limit(1)).execute()
    assert len(claim_due(camp.id, 10, T0, "main", (), max_attempts=3)) == 1
    assert claim_due(camp.id, 10, T0 - dt.timedelta(seconds=1), "main", (), 3) == []


def test_claim_dnc_number_is_never_claimed(db):
    camp = make_campaign()
    phones = make_numbers(camp, 4)
    DncEntry.create(list_name="global", phone=phones[2], added_at=to_db(T0))
    DncEntry.create(list_name="other", phone=phones[3], added_at=to_db(T0))
    claimed = claim_due(camp.id, 10, T0, "main", ("global",), 3)
    assert sorted(c.phone for c in claimed) == sorted([phones[0], phones[1], phones[3]])
    assert Number.get(Number.phone == phones[2]).status == "dnc"
    assert Attempt.select().where(Attempt.number == Number.get(Number.phone == phones[2])).count() == 0


def test_claim_zero_or_negative_claims_nothing(db):
    camp = make_campaign()
    make_numbers(camp, 2)
    assert claim_due(camp.id, 0, T0, "main", (), 3) == []
    assert claim_due(camp.id, -1, T0, "main", (), 3) == []  # SQLite reads LIMIT -1 as "all"
    assert Attempt.select().count() == 0
    assert [(n.status, n.attempts) for n in Number.select()] == [("pending", 0)] * 2


def test_claim_concurrent_claimers_never_share_a_number(db):
    """Six threads (six connections) claim until nothing is left: each number exactly once."""
    camp = make_campaign()
    total = 600
    make_numbers(camp, total)
    got, errors = [], []
    lock = threading.Lock()

    def worker():
        try:
            with database.connection_context():
                for _ in range(200):
                    batch = claim_due(camp.id, 7, T0, "main", (), 3)
                    if not batch:
                        return
                    with lock:
                        got.extend(c.number_id for c in batch)
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(got) == total
    assert len(set(got)) == total
    assert Attempt.select().count() == total
    assert Number.select().where(Number.status == "in_flight").count() == total


def test_claim_commits_survive_power_loss_on_sqlite(tmp_path):
    """The attempt row written before the Originate is what prevents a second call: its commit
    is fsynced (WAL with synchronous=NORMAL can lose the last commits on power loss)."""
    from agi_campaign.models import open_database
    database = open_database("sqlite:///" + str(tmp_path / "d.db"))
    with database.connection_context():
        assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert database.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    database.close_all()
