import threading

import pytest

from agi_campaign.errors import NotFoundError, StartupError
from agi_campaign.models import DncEntry
from agi_campaign.writer import BatchWriter

from tests.unit.factories import T0
from agi_campaign.clock import to_db


def add(phone):
    def write():
        DncEntry.create(list_name="l", phone=phone, added_at=to_db(T0))
        return phone
    return write


def test_writer_groups_concurrent_writes_and_returns_results(db):
    writer = BatchWriter(db)
    writer.start()
    out, errors = [], []

    def worker(i):
        try:
            out.append(writer.call(add("+1202%07d" % i)))
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    writer.stop()
    assert errors == [] and len(out) == 200
    assert DncEntry.select().count() == 200
    assert writer.writes == 200 and writer.batches < 200


def test_writer_project_error_fails_alone(db):
    writer = BatchWriter(db)
    writer.start()

    def refused():
        raise NotFoundError("attempt 9: unknown id or wrong token")

    with pytest.raises(NotFoundError, match="attempt 9"):
        writer.call(refused)
    assert writer.call(add("+12025550100")) == "+12025550100"
    writer.stop()
    assert DncEntry.select().count() == 1


def test_writer_a_broken_write_does_not_take_the_batch_with_it(db):
    writer = BatchWriter(db)
    writer.start()
    writer.call(add("+12025550100"))
    results = {}

    def run(key, fn):
        try:
            results[key] = writer.call(fn)
        except Exception as err:  # the duplicate must fail, the other must land
            results[key] = err

    threads = [threading.Thread(target=run, args=(k, fn)) for k, fn in
               (("dup", add("+12025550100")), ("ok", add("+12025550101")))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    writer.stop()
    assert results["ok"] == "+12025550101"
    assert isinstance(results["dup"], Exception)
    assert DncEntry.select().count() == 2


def test_writer_refuses_work_when_stopped(db):
    writer = BatchWriter(db)
    with pytest.raises(StartupError, match="not running"):
        writer.call(add("+12025550100"))
