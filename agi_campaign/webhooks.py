"""Per-call webhooks: the outbox of events to POST, and its backlog.

A campaign with ``webhook: {url, secret_env, events: [attempt, state]}`` gets one event per
finished attempt (``attempt.ended``) and per state change (``campaign.state``). Each event is
a WebhookEvent row written in the SAME transaction as the change it reports
(agi_campaign.results ends the attempt, agi_campaign.campaigns moves the campaign): a result
that is rolled back leaves no event, and a committed one always has its event, whatever
happens to the process afterwards. agi_campaign.webhook_delivery POSTs the rows.

The body is fixed when the row is written (every try sends the same bytes)::

    {"type": "attempt.ended", "timestamp": "2026-11-26T18:00:00.123456+00:00",
     "data": {"campaign": "reminders", "attempt_id": 17, "attempt_seq": 1, "number_id": 9,
              "phone": "+12025550123", "outcome": "busy", "dial_status": "BUSY",
              "hangup_cause": 17, "dest_result": null, "created_at": "...",
              "answered_at": null, "ended_at": "...", "duration_s": 3.2, "billsec_s": 0.0,
              "digits": null, "opted_out": false, "amd": null, "number_status": "pending",
              "note": null}}
    {"type": "campaign.state", "timestamp": "...",
     "data": {"campaign": "reminders", "from": "running", "to": "paused",
              "cause": "command pause", "at": "..."}}

``timestamp`` is when the event happened; ``number_status`` is the number's status after
the attempt (null when the number was not in flight any more, e.g. removed meanwhile); ``amd``
is ``{"status", "cause"}`` when AMD() ran. The phone number is the receiver's own data: it is
in the body, never in a log line.

``key`` (the ``webhook-id`` header, the idempotency key) is ``msg_`` and 32 random hex digits,
stored with the row: the same on every try and after restarts, unique across deployments
sharing a receiver. ``id`` is the delivery order within a campaign.

Which events a campaign wants: attempts per the running service's config (the Recorder's
``webhook_for``); state changes per the campaign's stored settings (Campaign.settings, synced
from the config by every command), so the CLI's ``campaign pause`` writes its event too.

Delivered rows are kept KEEP_DELIVERED_DAYS (an audit of what was sent and when), then deleted
by the deliverer (`purge_delivered`): their bodies hold phone numbers. Failed rows are kept.

A receiver that answered ``410 Gone`` is disabled: a Setting ``webhook_gone:<campaign id>``
(JSON: campaign, url, at) that the deliverer honours until the service restarts or the
campaign's webhook url changes; events are still written meanwhile (nothing is lost).
"""
import datetime as dt
import json
import uuid

import peewee

from agi_campaign.clock import SystemClock, from_db, to_db
from agi_campaign.db import database
from agi_campaign.models import Campaign, Setting, WebhookEvent, WebhookStatus

ATTEMPT_ENDED = "attempt.ended"
CAMPAIGN_STATE = "campaign.state"
GONE_PREFIX = "webhook_gone:"
KEEP_DELIVERED_DAYS = 7

_INSERT = ("INSERT INTO webhook_event (campaign_id, key, type, body, status, tries, created_at, "
           "next_try_at) VALUES ({p}, {p}, {p}, {p}, 'pending', 0, {p}, {p})")


def wants(webhook, event):
    """True when a campaign's WebhookConfig (or None) asks for `event` (attempt, state)."""
    return webhook is not None and event in webhook.events


def new_key():
    return "msg_" + uuid.uuid4().hex


def _iso(value):
    """A stored (naive UTC) or aware time as ISO 8601 text; None stays None."""
    return from_db(value).isoformat() if value is not None else None


def body(event_type, at, data):
    """The JSON text POSTed for an event (compact; keys in the order given)."""
    return json.dumps({"type": event_type, "timestamp": _iso(at), "data": data},
                      separators=(",", ":"))


def attempt_data(campaign, attempt, now, outcome, number_status):
    """`data` of an attempt.ended event. `attempt`: a mapping with the attempt's columns (id,
    seq, number_id, phone, created_at, answered_at, dial_status, hangup_cause, dest_result,
    duration_s, billsec_s, digits, opted_out, amd_status, amd_cause, note)."""
    amd = ({"status": attempt["amd_status"], "cause": attempt["amd_cause"]}
           if attempt.get("amd_status") else None)
    return {
        "campaign": campaign, "attempt_id": attempt["id"], "attempt_seq": attempt["seq"],
        "number_id": attempt["number_id"], "phone": attempt["phone"], "outcome": outcome,
        "dial_status": attempt["dial_status"], "hangup_cause": attempt["hangup_cause"],
        "dest_result": attempt["dest_result"], "created_at": _iso(attempt["created_at"]),
        "answered_at": _iso(attempt["answered_at"]), "ended_at": _iso(now),
        "duration_s": attempt["duration_s"], "billsec_s": attempt["billsec_s"],
        "digits": attempt["digits"], "opted_out": bool(attempt["opted_out"]), "amd": amd,
        "number_status": number_status, "note": attempt["note"],
    }


def enqueue(campaign_id, event_type, text, now):
    """One outbox row (one INSERT) in the caller's transaction."""
    database.execute_sql(_INSERT.format(p=database.param), (
        int(campaign_id), new_key(), event_type, text, to_db(now), to_db(now)))


def enqueue_state(row, from_state, to_state, cause, now):
    """The campaign.state event of Campaign `row`'s move, when its stored settings' webhook
    wants state events; call inside the move's transaction."""
    try:
        hook = json.loads(row.settings or "{}").get("webhook") or {}
    except ValueError:
        return
    if "state" not in hook.get("events", ()):
        return
    enqueue(row.id, CAMPAIGN_STATE, body(CAMPAIGN_STATE, now, {
        "campaign": row.name, "from": from_state, "to": to_state, "cause": cause,
        "at": _iso(now)}), now)


# ---- the deliverer's reads and writes --------------------------------------------------------

def oldest_pending(campaign_id):
    """The campaign's oldest undelivered event (WebhookEvent) or None."""
    return (WebhookEvent.select()
            .where((WebhookEvent.campaign == campaign_id)
                   & (WebhookEvent.status == WebhookStatus.PENDING.value))
            .order_by(WebhookEvent.id).first())


def _mark(event_id, **fields):
    with database.atomic():
        return (WebhookEvent.update(**fields)
                .where((WebhookEvent.id == event_id)
                       & (WebhookEvent.status == WebhookStatus.PENDING.value)).execute())


def mark_delivered(event_id, tries, now):
    return _mark(event_id, status=WebhookStatus.DELIVERED.value, tries=tries,
                 delivered_at=to_db(now), last_error=None)


def mark_retry(event_id, tries, next_try_at, error):
    return _mark(event_id, tries=tries, next_try_at=to_db(next_try_at), last_error=error[:200])


def mark_failed(event_id, tries, error):
    return _mark(event_id, status=WebhookStatus.FAILED.value, tries=tries,
                 last_error=error[:200])


def purge_delivered(campaign_id, now):
    """Delete the campaign's events delivered more than KEEP_DELIVERED_DAYS ago; the count."""
    cutoff = to_db(now - dt.timedelta(days=KEEP_DELIVERED_DAYS))
    return (WebhookEvent.delete()
            .where((WebhookEvent.campaign == campaign_id)
                   & (WebhookEvent.status == WebhookStatus.DELIVERED.value)
                   & (WebhookEvent.delivered_at < cutoff)).execute())


def campaign_ids(names):
    """{name: Campaign id} of the campaigns `names` that have a row."""
    return {c.name: c.id for c in Campaign.select(Campaign.id, Campaign.name)
            .where(Campaign.name.in_(list(names)))}


def orphan_backlog(names):
    """{campaign name: pending count} of campaigns with undelivered events not in `names`."""
    query = (WebhookEvent.select(Campaign.name, peewee.fn.COUNT(WebhookEvent.id))
             .join(Campaign)
             .where((WebhookEvent.status == WebhookStatus.PENDING.value)
                    & Campaign.name.not_in(list(names) or [""]))
             .group_by(Campaign.name).tuples())
    return dict(query)


# ---- 410 Gone --------------------------------------------------------------------------------

def disable(campaign_id, campaign, url, now):
    """Record that `campaign`'s receiver at `url` answered 410 Gone."""
    value = json.dumps({"campaign": campaign, "url": url, "at": _iso(now)})
    Setting.insert(key=GONE_PREFIX + str(campaign_id), value=value).on_conflict(
        conflict_target=[Setting.key], update={Setting.value: value}).execute()


def disabled():
    """{campaign name: {"url", "at"}} of the receivers disabled by a 410 Gone."""
    out = {}
    for row in Setting.select().where(Setting.key.startswith(GONE_PREFIX)):
        info = json.loads(row.value)
        out[info["campaign"]] = {"url": info["url"], "at": info["at"]}
    return out


def gone_url(campaign_id):
    """The url of the campaign's receiver that answered 410 Gone, or None: every node's
    deliveries of the campaign stop while it is its webhook url."""
    row = Setting.get_or_none(Setting.key == GONE_PREFIX + str(campaign_id))
    return json.loads(row.value)["url"] if row is not None else None


def enable(campaign_id):
    """Forget the campaign's 410 Gone (its url changed)."""
    Setting.delete().where(Setting.key == GONE_PREFIX + str(campaign_id)).execute()


def enable_all():
    """Forget every 410 Gone (the service starts: the receivers get another chance)."""
    Setting.delete().where(Setting.key.startswith(GONE_PREFIX)).execute()


# ---- backlog -----------------------------------------------------------------------------------

def backlog(now=None):
    """{campaign name: {"pending": int, "failed": int, "oldest_s": float or None}} for every
    campaign with undelivered or failed events; ``oldest_s``: age of its oldest undelivered
    event (None when none is pending). Reads the database (the metrics gauge, `status`)."""
    now = now or SystemClock().now()
    query = (WebhookEvent.select(Campaign.name, WebhookEvent.status,
                                 peewee.fn.COUNT(WebhookEvent.id),
                                 peewee.fn.MIN(WebhookEvent.created_at))
             .join(Campaign)
             .where(WebhookEvent.status.in_([WebhookStatus.PENDING.value,
                                             WebhookStatus.FAILED.value]))
             .group_by(Campaign.name, WebhookEvent.status).tuples())
    out = {}
    for name, status, count, oldest in query:
        entry = out.setdefault(name, {"pending": 0, "failed": 0, "oldest_s": None})
        entry[status] = count
        if status == WebhookStatus.PENDING.value and oldest is not None:
            entry["oldest_s"] = max((now - from_db(oldest)).total_seconds(), 0.0)
    return out


def age_limit(webhook):
    """How long an event is retried (its webhook's give_up_after_h)."""
    return dt.timedelta(hours=webhook.give_up_after_h)
