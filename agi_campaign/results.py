"""Writing call results back: the answer, the destination's result, the final outcome.

Three writers touch an attempt: the `connect` FastAGI session (answer, destination result), the
`result` FastAGI session run by the dialplan's hangup handler (the real outcome: DIALSTATUS and
HANGUPCAUSE), and recovery (an attempt whose call no longer exists becomes `lost`). Each write is
conditional on the attempt not being ended yet, so a second or late writer changes nothing.

When an attempt ends, its number moves on: answered -> done; otherwise back to pending after
the campaign's retry delay, or failed once it has had max_attempts attempts. An attempt whose
Originate Asterisk refused (`refused`: no call was placed) does not count toward max_attempts.
"""
import dataclasses
import datetime as dt
import logging

from agi_campaign.clock import from_db, to_db
from agi_campaign.db import database
from agi_campaign.errors import NotFoundError
from agi_campaign.models import (Attempt, AttemptStatus, Campaign, Number, NumberStatus,
                                 Outcome)

log = logging.getLogger(__name__)

DIALSTATUS_OUTCOME = {
    "ANSWER": Outcome.ANSWERED,
    "BUSY": Outcome.BUSY,
    "NOANSWER": Outcome.NOANSWER,
    "CONGESTION": Outcome.CONGESTION,
    "CHANUNAVAIL": Outcome.UNAVAILABLE,
    "CANCEL": Outcome.CANCELLED,
}


def outcome_for(dial_status):
    """Map Dial()'s DIALSTATUS to our Outcome; anything else (empty, INVALIDARGS...) is failed."""
    return DIALSTATUS_OUTCOME.get((dial_status or "").strip().upper(), Outcome.FAILED)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    retry_delay_s: int


class Recorder:
    """Records results; `policy_for(campaign_name) -> RetryPolicy` comes from the config."""

    def __init__(self, policy_for):
        self._policy_for = policy_for
        self._names = {}

    def _campaign_name(self, campaign_id):
        name = self._names.get(campaign_id)
        if name is None:
            name = Campaign.get_by_id(campaign_id).name
            self._names[campaign_id] = name
        return name

    def _attempt(self, attempt_id, token):
        att = Attempt.get_or_none(Attempt.id == int(attempt_id))
        if att is None or att.token != token:
            raise NotFoundError("attempt %s: unknown id or wrong token" % attempt_id)
        return att

    def lookup(self, attempt_id, token):
        """The campaign name of a live attempt; NotFoundError if unknown, forged or ended."""
        att = self._attempt(attempt_id, token)
        if att.status == AttemptStatus.ENDED.value:
            raise NotFoundError("attempt %s has already ended" % attempt_id)
        return self._campaign_name(att.campaign_id)

    def record_answer(self, attempt_id, token, now):
        self._attempt(attempt_id, token)
        (Attempt.update(status=AttemptStatus.ANSWERED.value, answered_at=to_db(now))
         .where((Attempt.id == int(attempt_id)) & (Attempt.status == AttemptStatus.DIALING.value))
         .execute())

    def record_destination(self, attempt_id, token, dest_result, now):
        self._attempt(attempt_id, token)
        Attempt.update(dest_result=str(dest_result)[:100]).where(
            Attempt.id == int(attempt_id)).execute()

    def record_result(self, attempt_id, token, dial_status, hangup_cause, answered_s, dialed_s,
                      now, note=None):
        """The outcome from the hangup handler. Returns False if the attempt had already ended."""
        att = self._attempt(attempt_id, token)
        return self.finish(att, outcome_for(dial_status), now, note=note,
                           dial_status=dial_status or None,
                           hangup_cause=_int_or_none(hangup_cause),
                           billsec_s=_float_or_none(answered_s))

    def finish(self, att, outcome, now, note=None, **fields):
        """End attempt `att` with `outcome` and move its number on; idempotent."""
        policy = self._policy_for(self._campaign_name(att.campaign_id))
        started = from_db(att.originated_at or att.created_at)
        duration = max((now - started).total_seconds(), 0.0)
        with database.atomic():
            ended = (Attempt.update(status=AttemptStatus.ENDED.value, outcome=outcome.value,
                                    ended_at=to_db(now), duration_s=duration, note=note, **fields)
                     .where((Attempt.id == att.id)
                            & (Attempt.status != AttemptStatus.ENDED.value))
                     .execute())
            if not ended:
                return False
            _advance_number(att.number_id, outcome, policy, now)
        log.info("attempt=%s campaign=%s outcome=%s", att.id, att.campaign_id, outcome.value)
        return True


REFUSED_RETRY_S = 10


def _advance_number(number_id, outcome, policy, now):
    number = Number.get_by_id(number_id)
    if outcome == Outcome.REFUSED:
        # Asterisk answered the Originate with an error: nobody was called, so the claim's
        # attempt is given back and the number is due again shortly.
        (Number.update(status=NumberStatus.PENDING.value, attempts=Number.attempts - 1,
                       last_outcome=outcome.value, updated_at=to_db(now),
                       next_attempt_at=to_db(now + dt.timedelta(seconds=REFUSED_RETRY_S)))
         .where((Number.id == number_id) & (Number.status == NumberStatus.IN_FLIGHT.value))
         .execute())
        return
    if outcome == Outcome.ANSWERED:
        status, next_at = NumberStatus.DONE, number.next_attempt_at
    elif number.attempts >= policy.max_attempts:
        status, next_at = NumberStatus.FAILED, number.next_attempt_at
    else:
        status = NumberStatus.PENDING
        next_at = to_db(now + dt.timedelta(seconds=policy.retry_delay_s))
    (Number.update(status=status.value, last_outcome=outcome.value, next_attempt_at=next_at,
                   updated_at=to_db(now))
     .where((Number.id == number_id) & (Number.status == NumberStatus.IN_FLIGHT.value))
     .execute())


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
