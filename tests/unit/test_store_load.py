"""Store concurrency: result writers and claimers at once, on SQLite (threads) and PostgreSQL
(threads, and worker processes each with its own connection). Hundreds of results a second for
a few seconds; afterwards nothing is lost, locked or stuck in flight, and the counts add up."""
import multiprocessing

import pytest

from agi_campaign.models import Attempt, Number

from tests.unit.support import (OPEN_STATUSES, make_campaign, make_numbers, run_store_load,
                                store_load_problems, store_load_process)

NUMBERS = 1500
# each number ends after min(id % 4 + 1, 3) attempts: 1, 2, 3 or 3
EXPECTED_RESULTS = NUMBERS // 4 * (1 + 2 + 3 + 3)

pytestmark = pytest.mark.timeout(120)


def _verify(campaign, stats, label):
    assert stats["errors"] == [], stats["errors"][:5]  # e.g. "database is locked"
    problems, attempts = store_load_problems(campaign.id)
    # Every 10th attempt's result is sent twice: each second one is ignored, none counted.
    resent = sum(1 for att in Attempt.select(Attempt.id).where(Attempt.campaign == campaign.id)
                 if att.id % 10 == 0)
    assert resent > 0 and stats["ignored"] == resent
    assert problems == [], problems[:10]
    assert attempts == stats["claimed"] == stats["results"] == EXPECTED_RESULTS
    assert Attempt.select().where(Attempt.status != "ended").count() == 0
    assert Number.select().where(Number.status.in_(OPEN_STATUSES)).count() == 0
    done = Number.select().where(Number.status == "done").count()
    failed = Number.select().where(Number.status == "failed").count()
    assert (done, failed) == (NUMBERS * 3 // 4, NUMBERS // 4)
    rate = stats["results"] / stats["elapsed_s"]
    print("\n%s: %d results (+%d duplicates ignored) in %.2f s = %.0f results/s"
          % (label, stats["results"], stats["ignored"], stats["elapsed_s"], rate))
    assert stats["elapsed_s"] < 40     # ~10 s here; generous for a loaded CI machine
    return rate


def test_store_load_threads_claim_while_writers_record(db):
    campaign = make_campaign()
    make_numbers(campaign, NUMBERS)
    stats = run_store_load(campaign.id, deadline_s=20, writers=4)
    backend = "postgres" if "Postgres" in type(db).__name__ else "sqlite"
    _verify(campaign, stats, "%s threads (1 claimer, 4 writers)" % backend)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_store_load_processes_on_postgres(db, db_url):
    campaign = make_campaign()
    make_numbers(campaign, NUMBERS)
    db.close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.map(store_load_process, [(db_url, campaign.id, 20, 3)] * 3)
    merged = {"claimed": 0, "results": 0, "ignored": 0, "errors": [], "elapsed_s": 0.0}
    for stats in results:
        for key in ("claimed", "results", "ignored", "errors"):
            merged[key] += stats[key]
        merged["elapsed_s"] = max(merged["elapsed_s"], stats["elapsed_s"])
    assert all(stats["claimed"] > 0 for stats in results), [s["claimed"] for s in results]
    _verify(campaign, merged, "postgres 3 processes (1 claimer + 3 writers each)")
