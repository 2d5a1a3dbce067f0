"""Writing call results back: the answer, the destination's result, the final outcome.

Writers of an attempt: the `connect` FastAGI session (answer, destination result; on the direct
call path also how the answered call ended, `record_outcome`); the `result` FastAGI session the
dialplan runs when a call ends unanswered (direct path) or at the end of every call (local
path), with the real outcome (DIALSTATUS or REASON, HANGUPCAUSE); the engine, ending a direct
path's answered attempt once Asterisk reports its channel gone; and recovery (an attempt whose
call no longer exists: from what was recorded or saved in AstDB, else `lost`). Each end is
conditional on the attempt not being ended yet, so a second or late writer changes nothing.
The `connect` session also records answering-machine detection (AMDSTATUS, AMDCAUSE); when it
hangs up on a machine it first commits dest_result `machine_hangup`, and DIALSTATUS=ANSWER then
ends the attempt as `machine` (outcome_for), not answered.

When an attempt ends, its number moves on: answered -> done; otherwise failed once it has been
retried as often after this outcome as the outcome's rule allows (``retry: {busy: {max: 3}}``:
a 4th busy is final; ``max: 0``: final at once), or had max_attempts attempts in all; else back
to pending after the outcome's delay (its rule's ``delay_s``, else the campaign's retry delay). Attempts count since
the number was last re-armed (``campaign reset`` sets its count to 0): the last ``attempts`` of
its attempts that were placed. An attempt whose Originate Asterisk refused (`refused`: no call
was placed) does not count toward either.

An attempt of a campaign whose webhook wants `attempt` events gets its outbox row
(agi_campaign.webhooks) in the transaction that ends it: one INSERT more on the result path.
"""
import collections
import datetime as dt
import logging

from agi_campaign import webhooks
from agi_campaign.clock import from_db, to_db
from agi_campaign.db import database
from agi_campaign.errors import NotFoundError
from agi_campaign.result_writer import CALL_TIMEOUT_S
from agi_campaign.models import MACHINE_HANGUP, AttemptStatus, Campaign, NumberStatus, Outcome

log = logging.getLogger(__name__)

DIALSTATUS_OUTCOME = {
    "ANSWER": Outcome.ANSWERED,
    "BUSY": Outcome.BUSY,
    "NOANSWER": Outcome.NOANSWER,
    "CONGESTION": Outcome.CONGESTION,
    "CHANUNAVAIL": Outcome.UNAVAILABLE,
    "CANCEL": Outcome.CANCELLED,
}


_REASON_STATUS = {"5": "BUSY", "8": "CONGESTION", "3": "NOANSWER"}
_CAUSE_STATUS = {"17": "BUSY", "34": "CONGESTION", "19": "NOANSWER", "16": "NOANSWER"}


def dial_status_for(status, cause=None):
    """The DIALSTATUS to record for `status` as the dialplan reported it. The local path reports
    Dial()'s own; the direct path reports ``REASON<n>`` for a callee who did not answer: the
    originate's REASON (the last signal the callee's channel gave: 5 busy, 8 congestion, 3
    ringing until the timeout) and the channel's HANGUPCAUSE are read as Dial() reads them
    (app_dial's handle_cause: 17 busy, 34 congestion, 16 or 19 no answer, any other cause a
    channel that was unavailable), REASON first."""
    text = (status or "").strip()
    if not text.upper().startswith("REASON"):
        return text
    return (_REASON_STATUS.get(text[6:].strip())
            or _CAUSE_STATUS.get(str(cause or "").strip(), "CHANUNAVAIL"))


def outcome_for(dial_status, dest_result=None):
    """Map Dial()'s DIALSTATUS to our Outcome; anything else (empty, INVALIDARGS...) is failed.
    An answered call hung up on as an answering machine (dest_result MACHINE_HANGUP, written
    before the hang-up) is `machine`: not answered, retried by its rule."""
    outcome = DIALSTATUS_OUTCOME.get((dial_status or "").strip().upper(), Outcome.FAILED)
    if outcome == Outcome.ANSWERED and dest_result == MACHINE_HANGUP:
        return Outcome.MACHINE
    return outcome


class Recorder:
    """Records results; `policy_for(campaign_name) -> RetryPolicy` comes from the config, and
    `webhook_for(campaign_name) -> WebhookConfig | None` (optional) says whether an ended
    attempt also gets its webhook outbox row (agi_campaign.webhooks), in the same transaction.

    With a `writer` (agi_campaign.result_writer.BatchWriter) the writes go through its group commit;
    without one they run in the caller's thread. With `metrics` (agi_campaign.metrics.Metrics),
    ended attempts and answers are observed once their transaction committed (_write's
    `on_commit`), never from a run that was rolled back.
    """

    def __init__(self, policy_for, writer=None, webhook_for=None, metrics=None):
        self._policy_for = policy_for
        self._webhook_for = webhook_for
        self._names = {}
        self._writer = writer
        self._metrics = metrics

    def _write(self, fn, on_commit=None):
        """Through the writer's shared transaction, or in a transaction of its own;
        `on_commit(result)` once the transaction holding the write committed."""
        if self._writer is not None:
            return self._writer.call(fn) if on_commit is None else _committed(
                self._writer.submit(fn), on_commit).result(CALL_TIMEOUT_S)
        with database.atomic():
            result = fn()
        if on_commit is not None:
            on_commit(result)
        return result

    def _write_later(self, fn, what, on_commit=None):
        """Queue a write without waiting for it (a failure is logged): for the writes a caller
        on the line must not wait for. The writer applies writes in the order queued."""
        if self._writer is None:
            self._write(fn, on_commit)
            return
        future = self._writer.submit(fn)
        future.add_done_callback(lambda f: f.exception() and log.warning(
            "%s not recorded: %s", what, f.exception()))
        if on_commit is not None:
            _committed(future, on_commit)

    def _write_ending(self, body, wait=True):
        """A write that may end attempts: `body(ended)` appends (campaign, outcome, duration_s)
        of each attempt it ended; they are counted in the metrics once committed. A rerun of
        the write (its batch failed) starts from an empty list. `wait=False`: queued, not
        waited for (_write_later)."""
        ended = []

        def fn():
            ended.clear()
            return body(ended)
        on_commit = None if self._metrics is None else (
            lambda _: [self._metrics.attempt_ended(*e) for e in ended])
        if not wait:
            return self._write_later(fn, "an attempt's end", on_commit)
        return self._write(fn, on_commit)

    def _campaign_name(self, campaign_id):
        name = self._names.get(campaign_id)
        if name is None:
            name = Campaign.get_by_id(campaign_id).name
            self._names[campaign_id] = name
        return name

    def _row(self, attempt_id, token=None):
        """The attempt (with its number's attempt count); NotFoundError if unknown or forged."""
        row = database.execute_sql(_sql("row"), (int(attempt_id),)).fetchone()
        if row is None or (token is not None and row[1] != token):
            raise NotFoundError("attempt %s: unknown id or wrong token" % attempt_id)
        return _Row(*row)

    def lookup(self, attempt_id, token):
        """The campaign name of a live attempt; NotFoundError if unknown, forged or ended.
        Read in a connection context of its own, so the calling thread (a `connect` session,
        which then writes only through the writer) holds no pooled connection while the call
        lasts: on PostgreSQL a connection held per answered call would exhaust the server's
        max_connections (100 by default) before a node's max_channels (bench/, benchmark 11)."""
        with database.connection_context():
            att = self._row(attempt_id, token)
            if att.status == AttemptStatus.ENDED.value:
                raise NotFoundError("attempt %s has already ended" % attempt_id)
            return self._campaign_name(att.campaign_id)

    def record_answer(self, attempt_id, token, now):
        """Queued, not waited for: the callee must not hear a slow database (dead air).
        The metrics observe the delay from the claim (the UPDATE's RETURNING: no extra
        query; SQLite >= 3.35)."""
        def write():
            rows = database.execute_sql(_sql("answer"), (to_db(now), int(attempt_id),
                                                         token)).fetchall()
            return [(self._campaign_name(cid), (now - from_db(created)).total_seconds())
                    for cid, created in rows]
        self._write_later(write, "attempt=%s answer" % attempt_id, None if self._metrics is None
                          else lambda rows: [self._metrics.answered(*r) for r in rows])

    def record_destination(self, attempt_id, token, dest_result, now):
        """Queued, not waited for (the call's outcome comes from the `result` script)."""
        self._write_later(lambda: database.execute_sql(
            _sql("destination"), (str(dest_result)[:100], int(attempt_id), token)),
            "attempt=%s destination result" % attempt_id)

    def record_opt_out(self, attempt_id, token, digit, dnc_list, now):
        """The callee pressed the opt-out key: their number goes on `dnc_list` and the attempt
        records ``opted_out`` and the key, in one transaction, waited for (committed when this
        returns) so the number is listed before the call ends. Also after the attempt ended (a
        hangup racing the key press): the press happened. Returns True when the number was
        not on the list yet. NotFoundError if the attempt is unknown or forged."""
        def write():
            att = self._row(attempt_id, token)
            added = database.execute_sql(_sql("dnc_add"), (
                dnc_list, to_db(now), "opt-out attempt=%s campaign=%s"
                % (att.id, self._campaign_name(att.campaign_id)), att.number_id)
            ).rowcount
            database.execute_sql(_sql("opt_out"), (str(digit)[:32], att.id, token))
            log.info("attempt=%s campaign=%s opted out: number put on Do-Not-Call list %s",
                     att.id, att.campaign_id, dnc_list)
            return bool(added)
        return self._write(write)

    def record_digits(self, attempt_id, token, digits):
        """The keys a `collect` read ('' when none); queued, not waited for."""
        self._write_later(lambda: database.execute_sql(
            _sql("digits"), (str(digits)[:32], int(attempt_id), token)),
            "attempt=%s digits" % attempt_id)

    def record_amd(self, attempt_id, token, amd_status, amd_cause, machine_hangup=False):
        """AMD()'s AMDSTATUS and AMDCAUSE on the attempt. With `machine_hangup` (the connect
        script is about to hang up on a machine) dest_result becomes MACHINE_HANGUP too, and the
        write is waited for: it must be committed before the hang-up, so that the `result`
        script's DIALSTATUS=ANSWER ends the attempt as `machine`. Otherwise queued, not
        waited for (a person must not hear a slow database)."""
        params = ((amd_status or "")[:16] or None, (amd_cause or "")[:64] or None)
        if machine_hangup:
            self._write(lambda: database.execute_sql(
                _sql("amd_hangup"), params + (MACHINE_HANGUP, int(attempt_id), token)))
        else:
            self._write_later(lambda: database.execute_sql(
                _sql("amd"), params + (int(attempt_id), token)), "attempt=%s amd" % attempt_id)

    def record_result(self, attempt_id, token, dial_status, hangup_cause, answered_s, dialed_s,
                      now, note=None, wait=True):
        """The outcome the dialplan reported (dial_status_for reads a direct path's
        ``REASON<n>``). Returns False if the attempt had already ended. `wait=False` (a caller
        that must not block: the AMI reader) queues it and returns None."""
        dial_status = dial_status_for(dial_status, hangup_cause)

        def write(ended):
            att = self._row(attempt_id, token)
            return self._finish(att, outcome_for(dial_status, att.dest_result), now,
                                note=note, dial_status=dial_status or None,
                                hangup_cause=_int_or_none(hangup_cause),
                                billsec_s=_float_or_none(answered_s), ends=ended)
        return self._write_ending(write, wait)

    def record_outcome(self, attempt_id, token, dial_status, hangup_cause, billsec_s,
                       dest_result):
        """Direct path, at the end of an answered call's `connect` session: how the call ended,
        committed when this returns, on the attempt still in flight (its channel is about to
        go; it ends once Asterisk reports the channel gone: record_result from the engine, or
        from these columns at reconcile). dest_result None keeps the attempt's. NotFoundError
        if the attempt is unknown, forged or ended already."""
        def write():
            if not database.execute_sql(_sql("outcome"), (
                    dial_status, _int_or_none(hangup_cause), _float_or_none(billsec_s),
                    None if dest_result is None else str(dest_result)[:100], int(attempt_id),
                    token)).rowcount:
                raise NotFoundError("attempt %s: unknown id, wrong token or ended" % attempt_id)
        self._write(write)

    def finish(self, attempt_id, outcome, now, note=None, token=None, **fields):
        """End attempt `attempt_id` with `outcome`; idempotent. NotFoundError if unknown, or if
        `token` is given and is not its token."""
        return self._write_ending(lambda ended: self._finish(
            self._row(attempt_id, token), outcome, now, note=note, ends=ended, **fields))

    def _finish(self, att, outcome, now, note=None, dial_status=None, hangup_cause=None,
                billsec_s=None, ends=None):
        """Hot path (one per call): plain SQL, as Peewee's query building cost more than the
        queries (bench/). One SELECT (in _row), two conditional UPDATEs, and one INSERT for a
        campaign whose webhook wants attempts, inside the transaction _write opened."""
        name = self._campaign_name(att.campaign_id)
        policy = self._policy_for(name)
        duration = max((now - from_db(att.created_at)).total_seconds(), 0.0)
        ended = database.execute_sql(_sql("end"), (
            outcome.value, to_db(now), duration, note, dial_status, hangup_cause, billsec_s,
            att.id)).rowcount
        if not ended:
            return False
        rule = policy.rules.get(outcome.value)
        same = None
        if rule is not None and rule[1] is not None:
            same = database.execute_sql(_sql("same_outcome"), (
                att.number_id, att.attempts, outcome.value)).fetchone()[0]
        move = _number_move(att, outcome, policy, now, same)
        moved = database.execute_sql(_sql("number"), move).rowcount
        if self._webhook_for is not None and webhooks.wants(self._webhook_for(name), "attempt"):
            data = webhooks.attempt_data(name, dict(
                att._asdict(), dial_status=dial_status, hangup_cause=hangup_cause,
                billsec_s=billsec_s, duration_s=duration, note=note), now, outcome.value,
                move[0] if moved else None)
            webhooks.enqueue(att.campaign_id, webhooks.ATTEMPT_ENDED,
                             webhooks.body(webhooks.ATTEMPT_ENDED, now, data), now)
        if ends is not None:
            ends.append((name, outcome.value, duration))
        # The one INFO line a call gets (the others are DEBUG: at hundreds of calls a second,
        # logging's handler lock showed in bench/ profiles).
        log.info("attempt=%s campaign=%s outcome=%s dialstatus=%s", att.id, att.campaign_id,
                 outcome.value, dial_status or "-")
        return True


REFUSED_RETRY_S = 10


def _committed(future, on_commit):
    """Call `on_commit(result)` when `future` (a BatchWriter write) succeeds; return it."""
    future.add_done_callback(lambda f: f.exception() is None and on_commit(f.result()))
    return future


_Row = collections.namedtuple(
    "_Row", "id token status campaign_id number_id created_at attempts dest_result seq phone "
            "answered_at digits opted_out amd_status amd_cause")

_SQL = {
    "row": "SELECT a.id, a.token, a.status, a.campaign_id, a.number_id, a.created_at, "
           "n.attempts, a.dest_result, a.seq, n.phone, a.answered_at, a.digits, a.opted_out, "
           "a.amd_status, a.amd_cause FROM attempt a JOIN number n ON n.id = a.number_id "
           "WHERE a.id = {p}",
    "answer": "UPDATE attempt SET status = 'answered', answered_at = {p} "
              "WHERE id = {p} AND token = {p} AND status = 'dialing' "
              "RETURNING campaign_id, created_at",
    "amd": "UPDATE attempt SET amd_status = {p}, amd_cause = {p} WHERE id = {p} AND token = {p}",
    "amd_hangup": "UPDATE attempt SET amd_status = {p}, amd_cause = {p}, dest_result = {p} "
                  "WHERE id = {p} AND token = {p} AND status <> 'ended'",
    "destination": "UPDATE attempt SET dest_result = {p} WHERE id = {p} AND token = {p}",
    "outcome": "UPDATE attempt SET dial_status = {p}, hangup_cause = {p}, billsec_s = {p}, "
               "dest_result = COALESCE({p}, dest_result) "
               "WHERE id = {p} AND token = {p} AND status <> 'ended'",
    "digits": "UPDATE attempt SET digits = {p} WHERE id = {p} AND token = {p}",
    "opt_out": "UPDATE attempt SET opted_out = TRUE, digits = {p} WHERE id = {p} AND token = {p}",
    # the attempt's number onto the list, unless it is there already (unique list_name, phone;
    # SQLite needs the WHERE to read ON CONFLICT as the INSERT's)
    "dnc_add": "INSERT INTO dnc_entry (list_name, phone, added_at, source) "
               "SELECT {p}, n.phone, {p}, {p} FROM number n WHERE n.id = {p} "
               "ON CONFLICT (list_name, phone) DO NOTHING",
    "end": "UPDATE attempt SET status = 'ended', outcome = {p}, ended_at = {p}, "
           "duration_s = {p}, note = {p}, dial_status = {p}, hangup_cause = {p}, "
           "billsec_s = {p} WHERE id = {p} AND status <> 'ended'",
    # this number's placed attempts since it was last re-armed (its last `attempts`) that
    # ended with an outcome; the attempt ending now is already ended in this transaction
    "same_outcome": "SELECT COUNT(*) FROM (SELECT outcome FROM attempt WHERE number_id = {p} "
                    "AND (outcome IS NULL OR outcome <> 'refused') ORDER BY id DESC LIMIT {p}) "
                    "AS recent WHERE outcome = {p}",
    "number": "UPDATE number SET status = {p}, last_outcome = {p}, attempts = attempts - {p}, "
              "next_attempt_at = COALESCE({p}, next_attempt_at), updated_at = {p} "
              "WHERE id = {p} AND status = 'in_flight'",
}


def _sql(name):
    """The statement `name` with the bound database's parameter mark (? or %s)."""
    return _SQL[name].format(p=database.param)


def _number_move(att, outcome, policy, now, same=None):
    """Parameters of the number's UPDATE: answered -> done; refused -> pending again, the
    attempt given back (nobody was called); else failed once it had more attempts with its
    outcome than the outcome's ``max`` retries (``same``: how many, this one included) or
    max_attempts in all, or pending after the outcome's delay."""
    if outcome == Outcome.REFUSED:
        status, give_back = NumberStatus.PENDING, 1
        next_at = to_db(now + dt.timedelta(seconds=REFUSED_RETRY_S))
    elif outcome == Outcome.ANSWERED:
        status, give_back, next_at = NumberStatus.DONE, 0, None
    elif (delay := policy.retry_after_s(outcome.value, att.attempts, same)) is None:
        status, give_back, next_at = NumberStatus.FAILED, 0, None
    else:
        status, give_back = NumberStatus.PENDING, 0
        next_at = to_db(now + dt.timedelta(seconds=delay))
    return (status.value, outcome.value, give_back, next_at, to_db(now), att.number_id)


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
