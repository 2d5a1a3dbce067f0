import datetime as dt
import threading

import peewee
import pytest

from agi_campaign.claim import claim_due
from agi_campaign.clock import from_db
from agi_campaign.errors import NotFoundError
from agi_campaign import results as results_mod
from agi_campaign.models import Attempt, DncEntry, Number, Outcome
from agi_campaign.result_writer import BatchWriter
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder, outcome_for

from tests.unit.support import T0, make_campaign, make_numbers


def recorder(max_attempts=2, retry=60):
    return Recorder(lambda name: RetryPolicy(max_attempts, retry))


@pytest.mark.parametrize("status,outcome", [
    ("ANSWER", Outcome.ANSWERED), ("BUSY", Outcome.BUSY), ("NOANSWER", Outcome.NOANSWER),
    ("CONGESTION", Outcome.CONGESTION), ("CHANUNAVAIL", Outcome.UNAVAILABLE),
    ("CANCEL", Outcome.CANCELLED), ("", Outcome.FAILED), ("INVALIDARGS", Outcome.FAILED),
    (None, Outcome.FAILED)])
def test_results_outcome_for_dialstatus(status, outcome):
    assert outcome_for(status) == outcome


@pytest.mark.parametrize("status,cause,dial_status", [
    # the direct path's REASON as the sandbox's callees give it (dialplan/README.md)
    ("REASON5", "", "BUSY"), ("REASON8", "", "CONGESTION"), ("REASON3", "19", "NOANSWER"),
    ("REASON0", "3", "CHANUNAVAIL"), ("REASON0", "1", "CHANUNAVAIL"),
    ("REASON0", "", "CHANUNAVAIL"),              # no channel at all (the request failed)
    # a trunk whose 486 arrives as REASON 0 or 1: the cause decides, as in app_dial
    ("REASON0", "17", "BUSY"), ("REASON1", "34", "CONGESTION"), ("REASON1", "16", "NOANSWER"),
    ("REASON1", "21", "CHANUNAVAIL"),
    # Dial()'s own DIALSTATUS (local path) passes through
    ("BUSY", "16", "BUSY"), ("ANSWER", "16", "ANSWER"), ("", "", "")])
def test_results_dial_status_for_reads_the_direct_paths_reason_and_cause(status, cause,
                                                                         dial_status):
    assert results_mod.dial_status_for(status, cause) == dial_status


def test_results_unanswered_direct_call_is_recorded_with_dials_vocabulary(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    c = claim_due(camp.id, 1, T0, "main", (), 2)[0]
    recorder().record_result(c.attempt_id, c.token, "REASON5", "", "", "", T0)
    att = Attempt.get_by_id(c.attempt_id)
    assert (att.outcome, att.dial_status, att.hangup_cause) == ("busy", "BUSY", None)


def test_results_direct_outcome_is_kept_in_flight_until_ended(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    c = claim_due(camp.id, 1, T0, "main", (), 2)[0]
    rec = recorder()
    rec.record_answer(c.attempt_id, c.token, T0)
    rec.record_outcome(c.attempt_id, c.token, "ANSWER", "16", 7, "played")
    att = Attempt.get_by_id(c.attempt_id)
    assert (att.status, att.dial_status, att.hangup_cause, att.billsec_s, att.dest_result) == (
        "answered", "ANSWER", 16, 7.0, "played")  # still in flight: its channel is up
    assert Number.get_by_id(c.number_id).status == "in_flight"
    with pytest.raises(NotFoundError):
        rec.record_outcome(c.attempt_id, "f" * 16, "ANSWER", "16", 7, "played")


def test_results_answered_number_is_done(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    c = claim_due(camp.id, 1, T0, "main", (), 2)[0]
    rec = recorder()
    assert rec.lookup(c.attempt_id, c.token) == "c1"
    rec.record_answer(c.attempt_id, c.token, T0 + dt.timedelta(seconds=3))
    rec.record_destination(c.attempt_id, c.token, "played", T0)
    assert rec.record_result(c.attempt_id, c.token, "ANSWER", "16", "12", "15",
                             T0 + dt.timedelta(seconds=15))
    att = Attempt.get_by_id(c.attempt_id)
    assert (att.status, att.outcome, att.dial_status, att.hangup_cause, att.dest_result,
            att.billsec_s, att.duration_s) == ("ended", "answered", "ANSWER", 16, "played",
                                               12.0, 15.0)
    assert Number.get_by_id(c.number_id).status == "done"


def test_results_busy_retries_then_fails_at_max_attempts(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    rec = recorder(max_attempts=2, retry=60)
    c = claim_due(camp.id, 1, T0, "main", (), 2)[0]
    rec.record_result(c.attempt_id, c.token, "BUSY", "17", "", "3", T0)
    n = Number.get_by_id(c.number_id)
    assert (n.status, n.last_outcome) == ("pending", "busy")
    assert from_db(n.next_attempt_at) == T0 + dt.timedelta(seconds=60)
    assert claim_due(camp.id, 1, T0, "main", (), 2) == []
    later = T0 + dt.timedelta(seconds=60)
    c2 = claim_due(camp.id, 1, later, "main", (), 2)[0]
    assert c2.seq == 2
    rec.record_result(c2.attempt_id, c2.token, "NOANSWER", "19", "", "30", later)
    assert Number.get_by_id(c.number_id).status == "failed"
    assert claim_due(camp.id, 1, later + dt.timedelta(days=1), "main", (), 2) == []


def test_results_second_result_is_ignored(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    rec = recorder()
    c = claim_due(camp.id, 1, T0, "main", (), 2)[0]
    assert rec.record_result(c.attempt_id, c.token, "ANSWER", "16", "5", "7", T0)
    assert not rec.record_result(c.attempt_id, c.token, "BUSY", "17", "", "", T0)
    assert Attempt.get_by_id(c.attempt_id).outcome == "answered"
    with pytest.raises(NotFoundError, match="already ended"):
        rec.lookup(c.attempt_id, c.token)


def test_results_forged_token_or_unknown_id_is_refused(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    rec = recorder()
    c = claim_due(camp.id, 1, T0, "main", (), 2)[0]
    with pytest.raises(NotFoundError):
        rec.record_result(c.attempt_id, "f" * 16, "ANSWER", "16", "", "", T0)
    with pytest.raises(NotFoundError):
        rec.lookup(999999, c.token)
    assert Attempt.get_by_id(c.attempt_id).status == "dialing"


def test_results_lookup_returns_its_connection_to_the_pool(db):
    """Regression (bench 11): a `connect` session kept the pooled connection its lookup opened
    until the call ended, so on PostgreSQL concurrent answered calls above max_connections
    failed with "too many clients". After lookup the session thread holds no connection."""
    camp = make_campaign()
    make_numbers(camp, 1)
    c = claim_due(camp.id, 1, T0, "main", (), 2)[0]
    rec = recorder()
    seen = []

    def session(attempt_id):
        try:
            seen.append(rec.lookup(attempt_id, c.token))
        except NotFoundError as err:
            seen.append(type(err))
        seen.append(db.is_closed())

    for attempt_id in (c.attempt_id, 999999):
        worker = threading.Thread(target=session, args=(attempt_id,))
        worker.start()
        worker.join(10)
    assert seen == ["c1", True, NotFoundError, True]


# ---- retry rules per outcome (config `retry:`) ----------------------------------------------

def ended(rec, camp, at, status, max_attempts=5):
    """Claim the campaign's one number at `at` and end the attempt with DIALSTATUS `status`;
    the number afterwards."""
    claimed = claim_due(camp.id, 1, at, "main", (), max_attempts)
    assert claimed, "nothing due at %s" % at
    c = claimed[0]
    rec.record_result(c.attempt_id, c.token, status, "17", "", "3", at)
    return Number.get_by_id(c.number_id)


def test_results_retry_rule_delay_and_cap_per_outcome(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    rec = Recorder(lambda name: RetryPolicy(5, 600, {"busy": (20, 1), "noanswer": (90, None)}))
    n = ended(rec, camp, T0, "BUSY")
    assert (n.status, from_db(n.next_attempt_at)) == ("pending", T0 + dt.timedelta(seconds=20))
    t1 = T0 + dt.timedelta(seconds=20)
    n = ended(rec, camp, t1, "NOANSWER")       # another outcome: its own delay, no cap hit
    assert (n.status, from_db(n.next_attempt_at)) == ("pending", t1 + dt.timedelta(seconds=90))
    t2 = t1 + dt.timedelta(seconds=90)
    n = ended(rec, camp, t2, "CONGESTION")     # no rule: the campaign's retry delay
    assert from_db(n.next_attempt_at) == t2 + dt.timedelta(seconds=600)
    t3 = t2 + dt.timedelta(seconds=600)
    n = ended(rec, camp, t3, "BUSY")           # the second busy: busy's 1 retry was used
    assert (n.status, n.last_outcome, n.attempts) == ("failed", "busy", 4)


def test_results_retry_max_0_is_final_at_once_and_max_attempts_still_caps(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    rec = Recorder(lambda name: RetryPolicy(2, 60, {"busy": (0, 0), "noanswer": (1, 10)}))
    assert ended(rec, camp, T0, "BUSY", 2).status == "failed"
    camp2 = make_campaign("c2")
    make_numbers(camp2, 1)
    assert ended(rec, camp2, T0, "NOANSWER", 2).status == "pending"
    n = ended(rec, camp2, T0 + dt.timedelta(seconds=1), "NOANSWER", 2)
    assert (n.status, n.attempts) == ("failed", 2)     # max_attempts 2 before noanswer's 10


def test_results_retry_counts_restart_after_reset_and_ignore_refused(db):
    from agi_campaign import campaigns
    from agi_campaign.models import Campaign

    camp = make_campaign()
    make_numbers(camp, 1)
    rec = Recorder(lambda name: RetryPolicy(5, 60, {"busy": (0, 1)}))
    ended(rec, camp, T0, "BUSY")
    c = claim_due(camp.id, 1, T0, "main", (), 5)[0]
    rec.finish(c.attempt_id, Outcome.REFUSED, T0)   # no call placed: not a busy, not counted
    later = T0 + dt.timedelta(seconds=60)
    assert ended(rec, camp, later, "BUSY").status == "failed"
    campaigns.apply_command(Campaign.get_by_id(camp.id).name, "pause", later)
    campaigns.apply_command(Campaign.get_by_id(camp.id).name, "reset", later)
    n = ended(rec, camp, later, "BUSY")             # a fresh set: one busy since the reset
    assert (n.status, n.attempts) == ("pending", 1)
    assert ended(rec, camp, later, "BUSY").status == "failed"


# ---- opt-out by keypress and collected digits (issue 11 item 2) -----------------------------

def _opt_out_setup():
    camp = make_campaign()
    make_numbers(camp, 2)
    claims = claim_due(camp.id, 2, T0, "main", ("optout",), 2)
    return camp, claims


def _dnc_rows():
    return [(e.list_name, e.phone, from_db(e.added_at), e.source)
            for e in DncEntry.select().order_by(DncEntry.id)]


def test_results_opt_out_lists_the_number_and_marks_the_attempt_in_one_write(db):
    rec = recorder()
    camp, (c, other) = _opt_out_setup()
    pressed = T0 + dt.timedelta(seconds=4)
    assert rec.record_opt_out(c.attempt_id, c.token, "9", "optout", pressed) is True
    phone = Number.get_by_id(c.number_id).phone
    assert _dnc_rows() == [("optout", phone, pressed,
                            "opt-out attempt=%s campaign=c1" % c.attempt_id)]
    att = Attempt.get_by_id(c.attempt_id)
    assert (att.opted_out, att.digits, att.status) == (True, "9", "dialing")
    assert Attempt.get_by_id(other.attempt_id).opted_out is None
    # the call then ends answered: the number is done, the outcome stays answered
    rec.record_result(c.attempt_id, c.token, "ANSWER", "16", "5", "8",
                      T0 + dt.timedelta(seconds=8))
    att = Attempt.get_by_id(c.attempt_id)
    assert (att.outcome, att.opted_out, att.digits) == ("answered", True, "9")
    assert Number.get_by_id(c.number_id).status == "done"
    assert from_db(att.ended_at) > pressed


def test_results_opt_out_twice_or_already_listed_keeps_one_entry(db):
    rec = recorder()
    _, (c, _) = _opt_out_setup()
    assert rec.record_opt_out(c.attempt_id, c.token, "9", "optout", T0) is True
    assert rec.record_opt_out(c.attempt_id, c.token, "9", "optout", T0) is False
    assert len(_dnc_rows()) == 1


def test_results_opt_out_after_the_attempt_ended_still_recorded(db):
    rec = recorder()
    _, (c, _) = _opt_out_setup()
    rec.record_result(c.attempt_id, c.token, "ANSWER", "16", "5", "8", T0)
    rec.record_opt_out(c.attempt_id, c.token, "#", "optout", T0)
    assert Attempt.get_by_id(c.attempt_id).opted_out is True and len(_dnc_rows()) == 1


def test_results_opt_out_forged_token_writes_nothing(db):
    rec = recorder()
    _, (c, _) = _opt_out_setup()
    with pytest.raises(NotFoundError):
        rec.record_opt_out(c.attempt_id, "f" * 16, "9", "optout", T0)
    assert _dnc_rows() == [] and Attempt.get_by_id(c.attempt_id).opted_out is None


def test_results_opt_out_through_the_batch_writer_is_committed_on_return(db):
    """The write the caller waits for (`_write`): committed when record_opt_out returns, so
    another connection already sees the entry while the call is up."""
    writer = BatchWriter(db)
    writer.start()
    try:
        rec = Recorder(lambda name: RetryPolicy(2, 60), writer)
        _, (c, _) = _opt_out_setup()
        assert rec.record_opt_out(c.attempt_id, c.token, "9", "optout", T0) is True
        assert len(_dnc_rows()) == 1
        assert Attempt.get_by_id(c.attempt_id).opted_out is True
    finally:
        writer.stop()


def test_results_opt_out_failure_lists_nothing(db, monkeypatch):
    """One transaction: when the attempt's update fails, the DNC entry is rolled back."""
    rec = recorder()
    _, (c, _) = _opt_out_setup()
    monkeypatch.setitem(results_mod._SQL, "opt_out", "UPDATE no_such_table SET x = 1")
    with pytest.raises(peewee.DatabaseError):
        rec.record_opt_out(c.attempt_id, c.token, "9", "optout", T0)
    assert _dnc_rows() == []


def test_results_collected_digits_stored_on_the_attempt(db):
    rec = recorder()
    _, (c, other) = _opt_out_setup()
    rec.record_digits(c.attempt_id, c.token, "123")
    rec.record_digits(other.attempt_id, other.token, "")
    assert Attempt.get_by_id(c.attempt_id).digits == "123"
    assert Attempt.get_by_id(other.attempt_id).digits == ""
    assert Attempt.get_by_id(c.attempt_id).opted_out is None


# ---- answering-machine detection (campaign `amd`) ---------------------------------------------

def test_results_outcome_for_answer_hung_up_as_machine():
    assert outcome_for("ANSWER", "machine_hangup") == Outcome.MACHINE
    assert outcome_for("ANSWER", "played") == Outcome.ANSWERED
    assert outcome_for("BUSY", "machine_hangup") == Outcome.BUSY


def test_results_machine_hangup_is_machine_and_retried_by_its_rule(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    rec = Recorder(lambda name: RetryPolicy(5, 600, {"machine": (30, 1)}))
    for n_call, at in enumerate((T0, T0 + dt.timedelta(seconds=30)), start=1):
        c = claim_due(camp.id, 1, at, "main", (), 5)[0]
        rec.record_answer(c.attempt_id, c.token, at)
        rec.record_amd(c.attempt_id, c.token, "MACHINE", "LONGGREETING-1500-1500",
                       machine_hangup=True)
        rec.record_destination(c.attempt_id, c.token, "machine_hangup", at)
        assert rec.record_result(c.attempt_id, c.token, "ANSWER", "16", "2", "5", at)
        att = Attempt.get_by_id(c.attempt_id)
        assert (att.outcome, att.dial_status, att.amd_status, att.amd_cause, att.dest_result) == (
            "machine", "ANSWER", "MACHINE", "LONGGREETING-1500-1500", "machine_hangup")
        n = Number.get_by_id(c.number_id)
        if n_call == 1:
            assert (n.status, n.last_outcome) == ("pending", "machine")
            assert from_db(n.next_attempt_at) == T0 + dt.timedelta(seconds=30)
    assert (n.status, n.attempts) == ("failed", 2)      # machine's 1 retry used


def test_results_amd_human_or_machine_message_stays_answered(db):
    camp = make_campaign()
    make_numbers(camp, 2)
    rec = recorder()
    for c, (status, cause, dest) in zip(claim_due(camp.id, 2, T0, "main", (), 2), [
            ("HUMAN", "HUMAN-800-800", "played"),
            ("MACHINE", "LONGGREETING-1500-1500", "machine_message:played")]):
        rec.record_amd(c.attempt_id, c.token, status, cause)
        rec.record_destination(c.attempt_id, c.token, dest, T0)
        rec.record_result(c.attempt_id, c.token, "ANSWER", "16", "9", "12", T0)
        att = Attempt.get_by_id(c.attempt_id)
        assert (att.outcome, att.amd_status, att.amd_cause) == ("answered", status, cause)
        assert Number.get_by_id(c.number_id).status == "done"


def test_results_amd_after_the_end_does_not_turn_answered_into_machine(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    rec = recorder()
    c = claim_due(camp.id, 1, T0, "main", (), 2)[0]
    rec.record_result(c.attempt_id, c.token, "ANSWER", "16", "9", "12", T0)
    rec.record_amd(c.attempt_id, c.token, "MACHINE", "LONGGREETING-1500-1500",
                   machine_hangup=True)
    att = Attempt.get_by_id(c.attempt_id)
    assert (att.outcome, att.dest_result) == ("answered", None)


def test_results_amd_values_are_clipped_to_their_columns(db):
    camp = make_campaign()
    make_numbers(camp, 1)
    rec = recorder()
    c = claim_due(camp.id, 1, T0, "main", (), 2)[0]
    rec.record_amd(c.attempt_id, c.token, "X" * 40, "Y" * 100)
    att = Attempt.get_by_id(c.attempt_id)
    assert (att.amd_status, att.amd_cause) == ("X" * 16, "Y" * 64)
