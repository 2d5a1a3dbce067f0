import csv
import datetime as dt
import io
import json

import pytest

from agi_campaign import campaigns, numbers
from agi_campaign.claim import claim_due
from agi_campaign.clock import to_db
from agi_campaign.engine import completion_counts
from agi_campaign.errors import PhoneError, UsageError
from agi_campaign.models import Attempt, Campaign, Number
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder

from tests.unit.support import T0, campaign_config, engine_for, make_numbers, phone, start_running

LATER = T0 + dt.timedelta(hours=1)


def c1(count=0, **campaign):
    """Campaign "c1" synced from campaign_config(**campaign), with `count` due numbers."""
    campaigns.sync_campaigns(campaign_config(**campaign), T0)
    row = Campaign.get(Campaign.name == "c1")
    make_numbers(row, count)
    return row


def statuses(row):
    return {n.phone: n.status for n in Number.select().where(Number.campaign == row.id)}


def set_status(e164, status, attempts=0, outcome=None):
    Number.update(status=status, attempts=attempts, last_outcome=outcome).where(
        Number.phone == e164).execute()


def recorder(max_attempts=2):
    return Recorder(lambda name: RetryPolicy(max_attempts, 60))


# ---- list -----------------------------------------------------------------------------------

def test_numbers_list_in_import_order_across_pages(db):
    row = c1(5)
    rows = list(numbers.list_numbers(row.id, page=2))
    assert [r.phone for r in rows] == [phone(i) for i in range(5)]
    first = rows[0]
    assert (first.raw, first.status, first.attempts, first.last_outcome, first.extra) == (
        phone(0), "pending", 0, None, {})
    assert first.next_attempt_at == T0 and first.updated_at == T0


def test_numbers_list_status_filter_and_other_campaigns_left_out(db):
    row = c1(6)
    two = Campaign.create(name="c2", type="on_demand", server="main", state="ready",
                          state_changed_at=to_db(T0), created_at=to_db(T0))
    make_numbers(two, 3, start=100)
    set_status(phone(1), "failed", 2, "busy")
    set_status(phone(4), "failed", 2, "noanswer")
    got = list(numbers.list_numbers(row.id, status="failed", page=1))
    assert [(r.phone, r.attempts, r.last_outcome) for r in got] == [
        (phone(1), 2, "busy"), (phone(4), 2, "noanswer")]
    assert len(list(numbers.list_numbers(row.id, page=4))) == 6
    assert list(numbers.list_numbers(row.id, status="removed")) == []


def test_numbers_list_unknown_status_names_the_choices(db):
    row = c1(1)
    with pytest.raises(UsageError, match="'gone' is not known; use one of pending, in_flight"):
        list(numbers.list_numbers(row.id, status="gone"))


def test_numbers_list_text_and_csv(db):
    row = c1()
    Number.create(campaign=row, phone="+12025550123", raw="+1 (202) 555-0123", status="done",
                  attempts=2, last_outcome="answered", next_attempt_at=to_db(T0),
                  updated_at=to_db(LATER), extra=json.dumps({"name": "=cmd"}))
    make_numbers(row, 1)
    text = io.StringIO()
    assert numbers.write_list(numbers.list_numbers(row.id), text) == 2
    assert text.getvalue().splitlines() == [
        "+12025550123     done        2  answered",
        "%-16s pending     0  -" % phone(0) + " " * 10 + "next 2026-12-01 09:00:00 +00:00"]
    text = io.StringIO()
    numbers.write_list(numbers.list_numbers(row.id), text, zone="America/Chicago")
    assert text.getvalue().splitlines()[1].endswith("next 2026-12-01 03:00:00 -06:00")
    out = io.StringIO()
    assert numbers.write_list(numbers.list_numbers(row.id), out, as_csv=True) == 2
    table = list(csv.reader(io.StringIO(out.getvalue())))
    assert table[0] == list(numbers.LIST_COLUMNS)
    assert table[1] == ["+12025550123", "'+1 (202) 555-0123", "done", "2", "answered",
                        T0.isoformat(), LATER.isoformat()]
    assert table[2][:5] == [phone(0), "'" + phone(0), "pending", "0", ""]


# ---- remove ---------------------------------------------------------------------------------

def test_numbers_remove_marks_removed_and_keeps_rows_and_attempts(db):
    row = c1(4)
    claim_due(row.id, 1, T0, "main", (), 2)           # phone(0) in flight, one attempt
    rec = recorder()
    att = Attempt.get()
    assert rec.record_result(att.id, att.token, "BUSY", "17", "0", "5", T0)   # pending again
    set_status(phone(2), "done", 1, "answered")
    result = numbers.remove(row.id, [phone(0), "(202) 200-0002", phone(2), "+12025550199"],
                            "US", LATER)
    assert result.removed == [phone(0), phone(2)]
    assert result.not_found == ["+12025550199"] and result.in_flight == []
    assert result.given[phone(2)] == "(202) 200-0002"
    assert statuses(row) == {phone(0): "removed", phone(1): "pending", phone(2): "removed",
                             phone(3): "pending"}
    gone = Number.get(Number.phone == phone(0))
    assert (gone.attempts, gone.last_outcome) == (1, "busy")
    assert gone.updated_at == to_db(LATER)
    assert Attempt.select().count() == 1             # never lose a result
    assert result.exit_status() == 0
    assert result.summary("c1").splitlines() == [
        "campaign c1: removed 2, already removed 0, not in the campaign 1, in flight 0",
        "  +12025550199: not in campaign c1"]


def test_numbers_remove_refuses_an_in_flight_number(db):
    row = c1(2)
    claimed = claim_due(row.id, 1, T0, "main", (), 2)
    assert [c.phone for c in claimed] == [phone(0)]
    result = numbers.remove(row.id, [phone(0), phone(1)], "US", LATER)
    assert result.in_flight == [phone(0)] and result.removed == [phone(1)]
    assert statuses(row)[phone(0)] == "in_flight"
    assert result.exit_status() == 1
    assert ("  %s: in flight; remove it after the call ends" % phone(0)
            in result.summary("c1").splitlines())
    # the call ends as usual; then it can be removed
    assert recorder().record_result(claimed[0].attempt_id, claimed[0].token, "ANSWER", "16",
                                    "5", "9", LATER)
    assert statuses(row)[phone(0)] == "done"
    again = numbers.remove(row.id, [phone(0), phone(1)], "US", LATER)
    assert again.removed == [phone(0)] and again.already == [phone(1)]


def test_numbers_remove_invalid_number_changes_nothing(db):
    row = c1(2)
    with pytest.raises(PhoneError) as err:
        numbers.remove(row.id, [phone(0), "555-01", "call me"], "US", LATER)
    text = str(err.value)
    assert text.startswith("numbers remove c1: not a valid phone number (region US): '555-01'")
    assert "'call me' (contains letters)" in text and "nothing was removed" in text
    assert set(statuses(row).values()) == {"pending"}


def test_numbers_remove_same_number_twice_and_region(db):
    row = c1()
    Number.create(campaign=row, phone="+442079460000", raw="020 7946 0000", status="pending",
                  next_attempt_at=to_db(T0), updated_at=to_db(T0))
    result = numbers.remove(row.id, ["020 7946 0000", "+44 20 7946 0000"], "GB", LATER)
    assert result.removed == ["+442079460000"] and not result.already


def test_numbers_removed_is_never_claimed_nor_rearmed(db):
    row = c1(4)
    set_status(phone(1), "failed", 2, "busy")
    set_status(phone(2), "done", 1, "answered")
    removed = numbers.remove(row.id, [phone(0), phone(1), phone(2)], "US", T0)
    assert len(removed.removed) == 3
    claimed = claim_due(row.id, 10, LATER, "main", (), 5)
    assert [c.phone for c in claimed] == [phone(3)]
    recorder(5).record_result(claimed[0].attempt_id, claimed[0].token, "ANSWER", "16", "5",
                              "9", LATER)
    campaigns.move(Campaign.get_by_id(row.id), "completed", "test", LATER)
    campaigns.apply_command("c1", "reset", LATER, rearm_all=True)   # re-arms failed and done
    assert statuses(row) == {phone(0): "removed", phone(1): "removed", phone(2): "removed",
                             phone(3): "pending"}
    failed = Number.get(Number.phone == phone(1))
    assert (failed.attempts, failed.last_outcome) == (2, "busy")   # not re-armed either


def test_numbers_removed_does_not_hold_back_completion(db):
    engine, _, clock, row, _ = engine_for(count=2)
    start_running(engine, row)
    numbers.remove(row.id, [phone(0), phone(1)], "US", clock.now())
    assert completion_counts(row.id) == (0, 0)
    engine.tick_states()
    assert Campaign.get_by_id(row.id).state == "completed"


# ---- export ---------------------------------------------------------------------------------

def add_number(row, e164, status="pending", attempts=0, outcome=None, extra=None):
    return Number.create(campaign=row, phone=e164, raw=e164, status=status, attempts=attempts,
                         last_outcome=outcome, next_attempt_at=to_db(T0), updated_at=to_db(T0),
                         extra=json.dumps(extra or {}))


def add_attempt(number, seq, at, dial_status):
    return Attempt.create(number=number, campaign=number.campaign, seq=seq, token="t%d" % seq,
                          server="main", status="ended", outcome="busy",
                          dial_status=dial_status, created_at=to_db(at),
                          ended_at=to_db(at + dt.timedelta(seconds=30)))


def read_export(campaign_id, page=numbers.PAGE):
    out = io.StringIO()
    count = numbers.export(campaign_id, out, page=page)
    table = list(csv.reader(io.StringIO(out.getvalue())))
    assert count == len(table) - 1
    return table


def test_numbers_export_columns_last_attempt_and_extra_union(db):
    row = c1()
    a = add_number(row, phone(0), "done", 2, "answered", {"name": "Ann", "city": "Paris"})
    add_number(row, phone(1), extra={"name": "Bob", "plan": "gold"})
    c = add_number(row, phone(2), "failed", 2, "busy")
    other = Campaign.create(name="c2", type="on_demand", server="main", state="ready",
                            state_changed_at=to_db(T0), created_at=to_db(T0))
    add_attempt(add_number(other, phone(9), extra={"secret": "x"}), 1, T0, "ANSWER")
    add_attempt(a, 1, T0, "NOANSWER")
    (Attempt.update(answered_at=to_db(LATER), hangup_cause=16, amd_status="HUMAN",
                    amd_cause="HUMAN-800-800")
     .where(Attempt.id == add_attempt(a, 2, LATER, "ANSWER").id).execute())
    add_attempt(c, 1, T0, "BUSY")
    for page in (1, 2, 1000):
        table = read_export(row.id, page)
        assert table[0] == list(numbers.EXPORT_COLUMNS) + ["name", "city", "plan"]
        ended = (LATER + dt.timedelta(seconds=30)).isoformat()
        assert table[1] == [phone(0), "'" + phone(0), "done", "2", "answered",
                            LATER.isoformat(), "ANSWER", "", "", LATER.isoformat(), ended,
                            "16", "HUMAN", "HUMAN-800-800", "Ann", "Paris", ""]
        assert table[2] == [phone(1), "'" + phone(1), "pending", "0", "", "", "", "", "", "", "",
                            "", "", "", "Bob", "", "gold"]
        assert table[3] == [phone(2), "'" + phone(2), "failed", "2", "busy", T0.isoformat(),
                            "BUSY", "", "", "", (T0 + dt.timedelta(seconds=30)).isoformat(),
                            "", "", "", "", "", ""]
        assert len(table) == 4


def test_numbers_export_digits_and_opt_out_of_the_latest_attempt(db):
    row = c1()
    a = add_number(row, phone(0), "done", 2, "answered")
    b = add_number(row, phone(1), "done", 1, "answered")
    first = add_attempt(a, 1, T0, "ANSWER")
    Attempt.update(digits="9", opted_out=True).where(Attempt.id == first.id).execute()
    add_attempt(a, 2, LATER, "ANSWER")                # the latest: nothing pressed
    Attempt.update(digits="123").where(Attempt.id == add_attempt(b, 1, T0, "ANSWER").id).execute()
    table = read_export(row.id)
    cols = table[0].index("last_digits"), table[0].index("last_opted_out")
    assert [[r[i] for i in cols] for r in table[1:]] == [["", ""], ["123", ""]]
    Attempt.update(digits="9", opted_out=True).where(Attempt.number == a.id).execute()
    assert [read_export(row.id)[1][i] for i in cols] == ["9", "yes"]


def test_numbers_export_neutralises_formula_like_cells(db):
    row = c1()
    add_number(row, phone(0), extra={"=cmd|' /C calc'!A0": "=1+1", "note": "@SUM(A1)",
                                     "ok": "plain", "minus": "-2"})
    table = read_export(row.id)
    assert table[0][len(numbers.EXPORT_COLUMNS):] == ["'=cmd|' /C calc'!A0", "note", "ok",
                                                      "minus"]
    assert table[1][len(numbers.EXPORT_COLUMNS):] == ["'=1+1", "'@SUM(A1)", "plain", "'-2"]
    assert table[1][0] == phone(0)              # E.164: '+' and digits, written bare


def test_numbers_export_empty_campaign_and_removed_numbers(db):
    row = c1()
    assert read_export(row.id) == [list(numbers.EXPORT_COLUMNS)]
    make_numbers(row, 2)
    numbers.remove(row.id, [phone(1)], "US", LATER)
    table = read_export(row.id)
    assert [r[2] for r in table[1:]] == ["pending", "removed"]


def test_numbers_export_attempts_is_the_audit_trail_of_every_attempt(db):
    row = c1()
    a = add_number(row, phone(0), "done", 2, "answered")
    first = add_attempt(a, 1, T0, "NOANSWER")
    second = add_attempt(a, 2, LATER, "ANSWER")
    (Attempt.update(answered_at=to_db(LATER), hangup_cause=16, amd_status="HUMAN",
                    amd_cause="HUMAN-800-800", digits="9", opted_out=True, outcome="answered",
                    dest_result="opted_out").where(Attempt.id == second.id).execute())
    for page in (1, 1000):
        out = io.StringIO()
        assert numbers.export_attempts(row.id, out, page=page) == 2
        table = list(csv.reader(io.StringIO(out.getvalue())))
        assert table[0] == list(numbers.ATTEMPT_COLUMNS)
        assert [r[:8] for r in table[1:]] == [
            [phone(0), "1", "main", T0.isoformat(), "",
             (T0 + dt.timedelta(seconds=30)).isoformat(), "busy", "NOANSWER"],
            [phone(0), "2", "main", LATER.isoformat(), LATER.isoformat(),
             (LATER + dt.timedelta(seconds=30)).isoformat(), "answered", "ANSWER"]]
        assert table[2][8:] == ["16", "", "", "opted_out", "HUMAN", "HUMAN-800-800", "9", "yes",
                                ""]
    assert first.id < second.id
