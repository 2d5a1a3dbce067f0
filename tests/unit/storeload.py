"""The store load used by test_store_load.py: a claimer and result writers on one campaign.

A separate module (not the test file) so spawned worker processes can import it by name.
Outcomes are a pure function of (number id, attempt seq), so the final state of every number
can be predicted and checked: number id % 4 + 1 is the attempt that answers (4: never, within
MAX_ATTEMPTS = 3 attempts the number fails).
"""
import queue
import threading
import time

from agi_campaign.claim import claim_due
from agi_campaign.db import database, open_database
from agi_campaign.models import Attempt, Number
from agi_campaign.results import Recorder, RetryPolicy

from tests.unit.factories import T0

MAX_ATTEMPTS = 3
OPEN = ("pending", "in_flight")


def answering_seq(number_id):
    return number_id % 4 + 1


def dial_status(number_id, seq):
    if seq >= answering_seq(number_id):
        return "ANSWER"
    return "BUSY" if seq % 2 else "NOANSWER"


def _close_connection():
    if not database.is_closed():
        database.close()


def run_load(campaign_id, deadline_s, writers=4, batch=25):
    """Claim in this thread, record results in `writers` threads, until every number of the
    campaign is done or failed (or the deadline). Returns counts and errors."""
    recorder = Recorder(lambda name: RetryPolicy(MAX_ATTEMPTS, 0))
    work = queue.Queue()
    stats = {"claimed": 0, "results": 0, "ignored": 0, "errors": []}
    lock = threading.Lock()
    outstanding = [0]

    def writer():
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                try:
                    status = dial_status(item.number_id, item.seq)
                    if status == "ANSWER":
                        recorder.record_answer(item.attempt_id, item.token, T0)
                    assert recorder.record_result(item.attempt_id, item.token, status, "16",
                                                  "5", "9", T0)
                    again = item.attempt_id % 10 == 0 and recorder.record_result(
                        item.attempt_id, item.token, "ANSWER", "16", "5", "9", T0)
                    with lock:
                        stats["results"] += 1
                        stats["ignored"] += 0 if again else item.attempt_id % 10 == 0
                except Exception as exc:  # noqa: BLE001 - reported to the test
                    with lock:
                        stats["errors"].append(repr(exc))
                finally:
                    with lock:
                        outstanding[0] -= 1
        finally:
            _close_connection()

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(writers)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        while time.monotonic() - started < deadline_s:
            try:
                claimed = claim_due(campaign_id, batch, T0, "main", (), MAX_ATTEMPTS)
            except Exception as exc:  # noqa: BLE001
                stats["errors"].append(repr(exc))
                break
            with lock:
                outstanding[0] += len(claimed)
                stats["claimed"] += len(claimed)
            for item in claimed:
                work.put(item)
            if claimed:
                continue
            with lock:
                idle = outstanding[0] == 0
            if idle and not Number.select().where(
                    (Number.campaign == campaign_id) & Number.status.in_(OPEN)).exists():
                break
            time.sleep(0.002)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join(30)
        _close_connection()
    stats["elapsed_s"] = time.monotonic() - started
    return stats


def process_main(args):
    """Entry point of a spawned worker process: its own connection, then run_load."""
    url, campaign_id, deadline_s, writers = args
    open_database(url, create=False)
    return run_load(campaign_id, deadline_s, writers=writers)


def check_invariants(campaign_id):
    """Every number ended with the status its results imply; attempts match attempt rows."""
    problems = []
    attempts = {}
    for att in Attempt.select().where(Attempt.campaign == campaign_id):
        attempts.setdefault(att.number_id, []).append(att)
    total = 0
    for number in Number.select().where(Number.campaign == campaign_id):
        k = answering_seq(number.id)
        want_attempts = min(k, MAX_ATTEMPTS)
        want_status = "done" if k <= MAX_ATTEMPTS else "failed"
        rows = sorted(attempts.get(number.id, []), key=lambda a: a.seq)
        total += len(rows)
        if (number.status, number.attempts) != (want_status, want_attempts):
            problems.append("number %d: %s/%d, want %s/%d" % (
                number.id, number.status, number.attempts, want_status, want_attempts))
        if [a.seq for a in rows] != list(range(1, want_attempts + 1)):
            problems.append("number %d: attempt seqs %s" % (number.id, [a.seq for a in rows]))
        for att in rows:
            want = "answered" if dial_status(number.id, att.seq) == "ANSWER" else None
            if att.status != "ended" or (want and att.outcome != want) or (
                    not want and att.outcome not in ("busy", "noanswer")):
                problems.append("attempt %d: %s %s" % (att.id, att.status, att.outcome))
        if rows and number.last_outcome != rows[-1].outcome:
            problems.append("number %d: last_outcome %s" % (number.id, number.last_outcome))
    return problems, total
