"""A first estimate of when a campaign finishes (the API's ``forecast``).

A first estimate, not the completion forecast (which weighs calling hours, retries and
pacing): the numbers still to settle (pending and in flight) divided by the rate at which
the campaign's numbers settled (became done, failed or dnc) over the last ``WINDOW_S``
seconds. ``estimate`` is the arithmetic (no I/O); ``forecast`` reads the counts. When no rate
can be measured the estimate is None with the reason, e.g. the campaign is not running or
nothing settled in the window.
"""
import datetime as dt

from agi_campaign.clock import show_time, to_db
from agi_campaign.lifecycle import CampaignState
from agi_campaign.models import Number, NumberStatus

WINDOW_S = 600
SETTLED = (NumberStatus.DONE.value, NumberStatus.FAILED.value, NumberStatus.DNC.value)


def estimate(state, remaining, settled, window_s, now, zone="UTC"):
    """``{"finishes_at": ISO text in ``zone``, to the second, or None, "remaining": n, "per_minute": rate or None,
    "window_s": s, "reason": text or None}`` for a campaign in ``state`` (a CampaignState
    value) with ``remaining`` numbers to settle, ``settled`` of them settled in the last
    ``window_s`` seconds before ``now`` (aware)."""
    out = {"finishes_at": None, "remaining": remaining, "per_minute": None,
           "window_s": window_s, "reason": None}
    if remaining == 0:
        out["reason"] = "no number left to call"
    elif state != CampaignState.RUNNING.value:
        out["reason"] = "the campaign is %s, not running" % state.upper()
    elif settled == 0:
        out["reason"] = "no number settled in the last %d s: no rate yet" % window_s
    else:
        rate_s = settled / window_s
        out["per_minute"] = round(rate_s * 60, 3)
        out["finishes_at"] = show_time(now + dt.timedelta(seconds=remaining / rate_s), zone,
                                       iso=True)
    return out


def forecast(campaign_id, state, counts, now, window_s=WINDOW_S, zone="UTC"):
    """``estimate`` for a campaign whose number counts are ``counts`` (status.number_counts):
    one COUNT of the numbers settled since ``now - window_s``."""
    remaining = counts.get(NumberStatus.PENDING.value, 0) + counts.get(
        NumberStatus.IN_FLIGHT.value, 0)
    settled = 0
    if remaining and state == CampaignState.RUNNING.value:
        since = to_db(now - dt.timedelta(seconds=window_s))
        settled = (Number.select().where((Number.campaign == campaign_id)
                                         & Number.status.in_(SETTLED)
                                         & (Number.updated_at >= since)).count())
    return estimate(state, remaining, settled, window_s, now, zone)
