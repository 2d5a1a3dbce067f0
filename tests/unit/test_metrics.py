"""Metrics (agi_campaign.metrics): names and labels of the exposition, the attempts counter
seeded from the database and counted only on commit, the scrape-time gauges."""
import datetime as dt
import re
import threading
import types

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agi_campaign.claim import claim_due
from agi_campaign.db import database
from agi_campaign.metrics import Metrics, exposition
from agi_campaign.models import NumberStatus
from agi_campaign.result_writer import BatchWriter
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder

from tests.unit.support import (T0, FakeAmi, FakeClock, campaign_config, make_campaign,
                                make_numbers, wait_until)

PHONE_LIKE = re.compile(r"\d{6,}")


def scrape(metrics):
    """{(sample name, frozenset(labels)): value} and the families, as Prometheus parses them."""
    body, content_type = exposition(metrics)
    assert content_type.startswith("text/plain")
    families = list(text_string_to_metric_families(body.decode()))
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for fam in families for s in fam.samples}
    return samples, families


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def service_for(writer=None, amis=None, backlog=None, fastagi=None):
    """The attributes ServiceCollector reads, around real parts (writer) and a config."""
    return types.SimpleNamespace(
        config=campaign_config(), amis=amis if amis is not None else {"main": FakeAmi()},
        fastagi=fastagi, writer=writer, engine=None, clock=FakeClock(T0),
        webhook_backlog=lambda: backlog or {})


def ended_in_db():
    rows = database.execute_sql("SELECT c.name, a.outcome, COUNT(*) FROM attempt a JOIN "
                                "campaign c ON c.id = a.campaign_id WHERE a.status = 'ended' "
                                "GROUP BY c.name, a.outcome").fetchall()
    return {(c, o): n for c, o, n in rows}


def test_metrics_exposition_names_labels_and_values(db):
    camp = make_campaign()
    make_numbers(camp, 5)
    metrics = Metrics()
    writer = BatchWriter(database, metrics=metrics)
    writer.start()
    metrics.watch(service_for(writer=writer, amis={"main": FakeAmi(), "b": FakeAmi(False)},
                              backlog={"c1": {"pending": 4, "failed": 1, "oldest_s": 12.5}},
                              fastagi=types.SimpleNamespace(active_connections=2,
                                                            sessions_total=7)))
    rec = Recorder(lambda name: RetryPolicy(2, 60), writer, metrics=metrics)
    try:
        claimed = claim_due(camp.id, 3, T0, "main", (), 2)
        a, b, c = claimed
        rec.record_answer(a.attempt_id, a.token, T0 + dt.timedelta(seconds=4))
        rec.record_answer(a.attempt_id, a.token, T0 + dt.timedelta(seconds=5))  # no-op twice
        assert rec.record_result(a.attempt_id, a.token, "ANSWER", "16", "10", "14",
                                 T0 + dt.timedelta(seconds=14))
        assert rec.record_result(b.attempt_id, b.token, "BUSY", "17", "", "2",
                                 T0 + dt.timedelta(seconds=2))
        assert not rec.record_result(b.attempt_id, b.token, "BUSY", "17", "", "2", T0)
        assert wait_until(lambda: writer.queue_depth == 0)
        samples, families = scrape(metrics)
    finally:
        writer.stop()
    for fam in families:
        assert fam.name.startswith("agi_campaign_"), fam.name
        if fam.type == "histogram":
            assert fam.name.endswith("_seconds"), fam.name
        for s in fam.samples:
            if fam.type == "counter" and not s.name.endswith("_created"):
                assert s.name.endswith("_total"), s.name
            assert set(s.labels) <= {"campaign", "server", "outcome", "status", "le"}, s
            for label, text in s.labels.items():
                assert label == "le" or not PHONE_LIKE.search(text), (s.name, s.labels)
    assert value(samples, "agi_campaign_attempts_total", campaign="c1", outcome="answered") == 1
    assert value(samples, "agi_campaign_attempts_total", campaign="c1", outcome="busy") == 1
    assert value(samples, "agi_campaign_call_duration_seconds_count", campaign="c1") == 2
    assert value(samples, "agi_campaign_call_duration_seconds_sum", campaign="c1") == 16
    assert value(samples, "agi_campaign_originate_to_answer_seconds_count", campaign="c1") == 1
    assert value(samples, "agi_campaign_originate_to_answer_seconds_sum", campaign="c1") == 4
    assert value(samples, "agi_campaign_result_write_duration_seconds_count") >= 1
    assert value(samples, "agi_campaign_calls_in_flight", campaign="c1", server="main") == 1
    numbers = {s.value for s in NumberStatus}
    got = {st: value(samples, "agi_campaign_numbers", campaign="c1", status=st)
           for st in numbers}
    assert got == dict({st: 0 for st in numbers}, pending=3, in_flight=1, done=1), got
    assert value(samples, "agi_campaign_ami_up", server="main") == 1
    assert value(samples, "agi_campaign_ami_up", server="b") == 0
    assert value(samples, "agi_campaign_fastagi_sessions") == 2
    assert value(samples, "agi_campaign_fastagi_sessions_total") == 7
    assert value(samples, "agi_campaign_result_writer_queue_depth") == 0
    assert value(samples, "agi_campaign_webhook_backlog", campaign="c1") == 4
    assert value(samples, "agi_campaign_webhook_failed", campaign="c1") == 1
    assert value(samples, "agi_campaign_webhook_oldest_pending_age_seconds", campaign="c1") \
        == 12.5


def test_metrics_attempts_counter_is_seeded_from_the_database(db):
    camp = make_campaign()
    make_numbers(camp, 6)
    rec = Recorder(lambda name: RetryPolicy(2, 60))
    for i, item in enumerate(claim_due(camp.id, 6, T0, "main", (), 2)):
        rec.record_result(item.attempt_id, item.token, ("ANSWER", "BUSY", "NOANSWER")[i % 3],
                          "16", "", "1", T0)
    claim_due(camp.id, 1, T0 + dt.timedelta(hours=1), "main", (), 2)  # in flight: not counted
    metrics = Metrics()
    metrics.seed_attempts()
    samples, _ = scrape(metrics)
    counted = {(dict(k[1])["campaign"], dict(k[1])["outcome"]): v for k, v in samples.items()
               if k[0] == "agi_campaign_attempts_total"}
    assert counted == ended_in_db() == {("c1", "answered"): 2, ("c1", "busy"): 2,
                                        ("c1", "noanswer"): 2}


def one_claimed_attempt():
    """(started BatchWriter, Metrics, Recorder writing through both, the claimed attempt) of a
    campaign "c1" with one number."""
    camp = make_campaign()
    make_numbers(camp, 1)
    writer = BatchWriter(database)
    writer.start()
    metrics = Metrics()
    rec = Recorder(lambda name: RetryPolicy(2, 60), writer, metrics=metrics)
    return writer, metrics, rec, claim_due(camp.id, 1, T0, "main", (), 2)[0]


def test_metrics_counted_once_on_commit_when_a_batch_fails_and_is_rerun(db):
    """A batch holding a result and a write that breaks the transaction is rolled back, then
    rerun one write a transaction: the result is counted once, from the commit that kept it."""
    writer, metrics, rec, item = one_claimed_attempt()
    hold, held = threading.Event(), threading.Event()
    try:
        writer.submit(lambda: (held.set(), hold.wait(10)))
        assert held.wait(10)
        caller = threading.Thread(target=rec.record_result, daemon=True, args=(
            item.attempt_id, item.token, "BUSY", "17", "", "3", T0 + dt.timedelta(seconds=3)))
        caller.start()
        assert wait_until(lambda: writer.queue_depth >= 2, 10)
        broken = writer.submit(lambda: database.execute_sql("SELECT * FROM no_such_table"))
        hold.set()
        caller.join(10)
        assert broken.exception(10) is not None
    finally:
        writer.stop()
    assert ended_in_db() == {("c1", "busy"): 1}
    samples, _ = scrape(metrics)
    assert value(samples, "agi_campaign_attempts_total", campaign="c1", outcome="busy") == 1
    assert value(samples, "agi_campaign_call_duration_seconds_count", campaign="c1") == 1


def test_metrics_result_rolled_back_is_not_counted(db):
    """A result whose transaction fails for good (in its batch and in its rerun alone) after
    the attempt was ended in it: rolled back, and not counted."""
    writer, metrics, rec, item = one_claimed_attempt()
    finish = rec._finish

    def finish_then_break(*args, **kwargs):
        finish(*args, **kwargs)
        raise RuntimeError("the transaction breaks after the attempt was ended in it")
    rec._finish = finish_then_break
    try:
        with pytest.raises(RuntimeError):
            rec.record_result(item.attempt_id, item.token, "BUSY", "17", "", "3", T0)
    finally:
        writer.stop()
    assert ended_in_db() == {}
    samples, _ = scrape(metrics)
    assert value(samples, "agi_campaign_attempts_total", campaign="c1", outcome="busy") is None
    assert value(samples, "agi_campaign_call_duration_seconds_count", campaign="c1") is None


def test_metrics_numbers_by_status_are_cached_for_a_few_seconds(db):
    camp = make_campaign()
    make_numbers(camp, 2)
    now = [100.0]
    metrics = Metrics(monotonic=lambda: now[0], numbers_cache_s=5)
    metrics.watch(service_for())

    def pending():
        return value(scrape(metrics)[0], "agi_campaign_numbers", campaign="c1",
                     status="pending")
    assert pending() == 2
    make_numbers(camp, 3, start=10)
    now[0] += 4.9
    assert pending() == 2
    now[0] += 0.2
    assert pending() == 5


def test_metrics_scrape_without_database_still_answers(db):
    metrics = Metrics()
    metrics.watch(service_for())
    database.execute_sql("ALTER TABLE attempt RENAME TO attempt_gone")
    samples, _ = scrape(metrics)
    assert value(samples, "agi_campaign_ami_up", server="main") == 1
    assert not any(k[0] == "agi_campaign_calls_in_flight" for k in samples)
