"""Delivering the webhook outbox (agi_campaign.webhooks) by Standard Webhooks 1.0, over httpx.

`Deliverer` runs in the `run` service: one daemon thread per campaign with a webhook, never on
the dialing or result path (those only INSERT the outbox row), so a slow, hung or absent
receiver never holds a call or a result write.

Per campaign, strictly in order: a thread takes the campaign's oldest undelivered event (lowest
id), POSTs it, and only when it is settled takes the next one; other campaigns' threads go on.
(On SQLite ids are committed in order. On PostgreSQL two transactions of one campaign
committing at the same instant on different connections, such as a state change (by the engine,
the API or the CLI) and a result, can commit a lower id last, which is then sent after a higher
one: order holds between events that did not commit at the same instant.)

One try: POST ``url`` with the event's body (``content-type: application/json``) and headers
``webhook-id`` (the event's key: identical on every try, the idempotency key),
``webhook-timestamp`` (Unix seconds of this try) and ``webhook-signature`` (``v1,`` and the
base64 HMAC-SHA256, keyed with the base64-decoded secret after ``whsec_``, of
``<webhook-id>.<webhook-timestamp>.<body>``). Redirects are not followed.

- 2xx: delivered; the row is marked delivered (a crash before that mark re-delivers the event
  after the restart, with the same webhook-id: delivery is at least once).
- ``410 Gone``: the receiver wants no more events; that campaign's deliveries stop (ERROR log,
  `status` shows it, webhooks.disable: stored, so every node honours it) until the service
  restarts (a node starting with no other live one forgets it) or its webhook url changes.
  Its events stay in the outbox and are delivered then.
- anything else (other status, refused connection, timeout after ``timeout_s``): tried again
  after ``backoff_s``: ``min_backoff_s`` doubling per failed try up to ``max_backoff_s``, with
  equal jitter (a uniformly random point in the second half of that delay); a ``Retry-After``
  (seconds or HTTP date, with any status) that asks for longer is honoured up to
  RETRY_AFTER_CAP_S. A failed try when the event is older than ``give_up_after_h`` marks it
  failed (ERROR log) and the campaign's next event goes on.

The tries, the next try's time and the last error are stored with the event, so the backoff
goes on across restarts. Events of a campaign that has no webhook in the running config (removed
from the config, or its ``webhook:`` removed) stay in the outbox undelivered, shown by `status`,
and are delivered once the campaign has a webhook again (start-up logs a WARNING naming them).

A campaign's thread with nothing to deliver deletes, at most hourly, its events delivered more
than webhooks.KEEP_DELIVERED_DAYS ago.

Several nodes on one database (`run` processes sharing PostgreSQL): one node at a time delivers
a campaign's events. Each campaign thread delivers only while it holds the lease
``webhooks:<campaign id>`` (agi_campaign.lease, holder = the node id), so campaigns may spread
over nodes; a thread that does not hold it idles (POLL_S) and takes it over once it is free.
A POST starts only while the lease is trusted for `post_limit_s` + POST_MARGIN_S more, so no
POST runs past the lease and two nodes never POST one campaign's events at once. The ttl
(`lease_ttl_s`) leaves room for that after a renewal that took less than TTL_SLACK_S -
POST_MARGIN_S - lease.MARGIN_S seconds. A thread that stops within JOIN_S releases its lease
(the other node takes over at its next poll); a node that dies, or a thread abandoned in a
POST at a stop, holds it until it expires, within the ttl. On SQLite, one `run` per database
(deployment.ServiceLock), a starting Deliverer takes every lease over at once. Delivery stays at
least once: an event POSTed by a node that died before recording it is POSTed again by the next
holder, with the same webhook-id.

Stop: the threads are told to stop and joined for JOIN_S at most; a POST still under way is
abandoned with its daemon thread, which then writes nothing (the event is re-delivered at the
next start, or by another node), so the service's stop_deadline_s holds.
"""
import datetime as dt
import email.utils
import logging
import random
import threading
import urllib.parse

import httpx
import standardwebhooks

from agi_campaign import heartbeat, webhooks
from agi_campaign.clock import UTC, SystemClock, from_db
from agi_campaign.db import database, is_postgres
from agi_campaign.lease import Lease, expire_all

log = logging.getLogger(__name__)

POLL_S = 0.5
JOIN_S = 1.0
RETRY_AFTER_CAP_S = 3600.0
DB_RETRY_S = 2.0
PURGE_EVERY_S = 3600.0
LEASE_PREFIX = "webhooks:"
POST_PHASES = 3         # httpx's timeout bounds each phase: connect, send, each read
POST_MARGIN_S = 2.0     # trust left after the longest POST: recording its outcome
MIN_TTL_S = 15.0
TTL_SLACK_S = 10.0


def post_limit_s(webhook):
    """How long one POST may take: httpx applies ``timeout_s`` to the connection, to sending
    and to each read, so a receiver that answers in one read is done within POST_PHASES times
    timeout_s. (One that drips its answer byte by byte can take longer: httpx has no overall
    deadline.)"""
    return POST_PHASES * float(webhook.timeout_s)


def lease_ttl_s(webhook):
    """The ttl of a campaign's delivery lease: max(MIN_TTL_S, post_limit_s + TTL_SLACK_S).
    Right after a renewal that took r seconds the trust left is ttl - lease.MARGIN_S - r, more
    than post_limit_s + POST_MARGIN_S (what a POST needs) while r < TTL_SLACK_S -
    lease.MARGIN_S - POST_MARGIN_S (7 s): so a POST can always start after a renewal, and a
    node that dies hands over within this ttl (40 s at the default timeout_s of 10 s)."""
    return max(MIN_TTL_S, post_limit_s(webhook) + TTL_SLACK_S)


def lease_name(campaign_id):
    return "%s%s" % (LEASE_PREFIX, campaign_id)


def signed_headers(secret, key, body, now):
    """The Standard Webhooks headers of one try of `body` (text) with webhook-id `key` at
    `now` (aware), signed with `secret` (``whsec_<base64>``)."""
    stamp = int(now.timestamp())
    signature = standardwebhooks.Webhook(secret).sign(
        key, dt.datetime.fromtimestamp(stamp, UTC), body)
    return {"content-type": "application/json", "user-agent": "agi-campaign",
            "webhook-id": key, "webhook-timestamp": str(stamp),
            "webhook-signature": signature}


def backoff_s(tries, min_s, max_s, rng=random):
    """Seconds to wait after the `tries`-th failed try (1, 2...): min_s * 2**(tries-1) capped
    at max_s, then a random point in [half of it, all of it] (equal jitter)."""
    base = min(float(max_s), float(min_s) * 2 ** min(max(tries - 1, 0), 40))
    return base / 2 + rng.random() * base / 2


def retry_after_s(value, now):
    """A Retry-After header (delay seconds or an HTTP date) in seconds from `now`; None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def next_try_delay(tries, webhook, retry_after=None, rng=random):
    """The wait before the next try: the backoff, or a longer Retry-After (capped)."""
    delay = backoff_s(tries, webhook.min_backoff_s, webhook.max_backoff_s, rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
    return delay


def endpoint(url):
    """scheme://host[:port] of a URL: what logs show of it (not its path or query)."""
    parts = urllib.parse.urlsplit(url)
    return "%s://%s" % (parts.scheme, parts.netloc)


class _Try:
    """What one POST gave: `ok` (2xx), `gone` (410), else `error` text and `retry_after`."""

    def __init__(self, ok=False, gone=False, error=None, retry_after=None):
        self.ok, self.gone, self.error, self.retry_after = ok, gone, error, retry_after


def post(client, webhook, event, now):
    """POST outbox row `event` to `webhook`'s url; a _Try (never raises for network errors)."""
    headers = signed_headers(webhook.secret, event.key, event.body, now)
    try:
        response = client.post(webhook.url, content=event.body.encode("utf-8"),
                               headers=headers, timeout=webhook.timeout_s)
    except httpx.TimeoutException:
        return _Try(error="no answer within timeout_s (%ss)" % webhook.timeout_s)
    except httpx.HTTPError as err:
        return _Try(error="%s: %s" % (type(err).__name__, err))
    code = response.status_code
    if 200 <= code < 300:
        return _Try(ok=True)
    if code == 410:
        return _Try(gone=True, error="HTTP 410 Gone")
    return _Try(error="HTTP %d" % code,
                retry_after=retry_after_s(response.headers.get("retry-after"), now))


class Deliverer:
    """The delivery threads of the `run` service. `webhook_for(name) -> WebhookConfig | None`
    reads the running config; `names`: the configured campaigns (a thread each for those with
    a webhook); `node`: this node's id, the holder of its leases (its service_heartbeat row
    id); `fixed_ttl_s`: a lease ttl instead of `lease_ttl_s(webhook)` (tests; it must exceed
    post_limit_s + POST_MARGIN_S + lease.MARGIN_S, or nothing is POSTed)."""

    def __init__(self, webhook_for, names, clock=None, rng=None, *, node, fixed_ttl_s=None):
        self._webhook_for = webhook_for
        self._names = list(names)
        self._node = node
        self._ttl_for = lease_ttl_s if fixed_ttl_s is None else (lambda hook: fixed_ttl_s)
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._abandoned = threading.Event()
        self._threads = []
        self._running = set()

    def start(self):
        with database.connection_context():
            if not heartbeat.live_ids(self._clock.now()) - {self._node}:
                webhooks.enable_all()   # the first node to start gives receivers that said
                #                         410 another chance; joining others, it keeps theirs
            if not is_postgres():       # one `run` per SQLite database (deployment.ServiceLock):
                expire_all(LEASE_PREFIX, self._clock.now())    # its leases are a dead run's
            for name, count in webhooks.orphan_backlog(self._names).items():
                log.warning("campaign=%s has %d undelivered webhook event(s) but is no longer "
                            "in the config: kept, delivered once it is back with a webhook",
                            name, count)
        self.add(self._names)

    def add(self, names):
        """Start the thread of each campaign of `names` that has a webhook and no thread yet
        (at start, and after a config reload: a thread stays for the service's life and idles
        while its campaign has no webhook)."""
        with database.connection_context():
            ids = webhooks.campaign_ids(list(names))
        for name in names:
            if name in self._running or name not in ids or self._webhook_for(name) is None:
                continue
            thread = threading.Thread(target=self._run, args=(name, ids[name]), daemon=True,
                                      name="webhook-%s" % name)
            thread.start()
            self._running.add(name)
            self._threads.append(thread)

    def stop(self):
        """Tell the threads to stop and wait JOIN_S at most for them; each that ends within
        JOIN_S releases its lease (one still in a POST writes nothing: its lease expires)."""
        self._stop.set()
        deadline = self._clock.monotonic() + JOIN_S
        for thread in self._threads:
            thread.join(max(deadline - self._clock.monotonic(), 0))
        self._abandoned.set()       # a thread still in a POST no longer writes when it returns
        self._threads = []

    def _run(self, name, campaign_id):
        lease = Lease(lease_name(campaign_id), self._node, MIN_TTL_S, self._clock)
        worker = _CampaignWorker(name, campaign_id, self._webhook_for, self._clock, self._rng,
                                 lease, self._abandoned.is_set, self._ttl_for)
        trouble = False
        try:
            while not self._stop.is_set():
                try:
                    wait = worker.step()
                    trouble = False
                except Exception as err:        # the database went away: try again later
                    if self._stop.is_set():
                        return
                    (log.info if trouble else log.warning)(
                        "campaign=%s webhook delivery paused %.0f s: %s", name, DB_RETRY_S, err)
                    trouble, wait = True, DB_RETRY_S
                    if not database.is_closed():
                        database.close()
                if wait:
                    self._stop.wait(wait)
        finally:
            worker.close()
            if not self._abandoned.is_set():    # an abandoned thread writes nothing: its
                lease.release()                 # lease expires by itself


class _CampaignWorker:
    """Delivers one campaign's events in order while it holds `lease` (module docstring)."""

    def __init__(self, name, campaign_id, webhook_for, clock, rng, lease,
                 abandoned=lambda: False, ttl_for=lease_ttl_s):
        self.name, self.campaign_id = name, campaign_id
        self._lease, self._ttl_for = lease, ttl_for
        self._abandoned = abandoned
        self._webhook_for = webhook_for
        self._clock, self._rng = clock, rng
        self._client = httpx.Client(follow_redirects=False)
        self._failing = False
        self._purged_at = None

    def close(self):
        self._client.close()

    def step(self):
        """Settle at most one event; returns how long to wait before the next step."""
        hook = self._webhook_for(self.name)
        if hook is None or hook.secret is None:
            return POLL_S
        self._lease.ttl_s = self._ttl_for(hook)     # follows a reloaded timeout_s
        if not self._lease.hold():      # another node delivers this campaign (or no database)
            return POLL_S
        now = self._clock.now()
        with database.connection_context():
            gone = webhooks.gone_url(self.campaign_id)  # stored: whichever node got the 410
            if gone is not None:
                if hook.url == gone:
                    return POLL_S
                webhooks.enable(self.campaign_id)       # the url changed: try the new one
            event = webhooks.oldest_pending(self.campaign_id)
            if event is None and (self._purged_at is None or (
                    now - self._purged_at).total_seconds() >= PURGE_EVERY_S):
                self._purged_at = now
                webhooks.purge_delivered(self.campaign_id, now)
        if event is None:
            return POLL_S
        due = from_db(event.next_try_at)
        if due > now:
            return min((due - now).total_seconds(), POLL_S)
        if not self._lease.hold(post_limit_s(hook) + POST_MARGIN_S):
            return POLL_S               # lost, or renewed too slowly to cover a POST
        result = post(self._client, hook, event, now)
        if self._abandoned():       # the service has stopped: the event stays pending
            return POLL_S
        self._settle(hook, event, result, self._clock.now())
        return 0

    def _settle(self, hook, event, result, now):
        tries = event.tries + 1
        with database.connection_context():
            if result.ok:
                webhooks.mark_delivered(event.id, tries, now)
                if self._failing:
                    log.info("campaign=%s webhook %s delivers again (event %s after %d tries)",
                             self.name, endpoint(hook.url), event.key, tries)
                self._failing = False
                return
            if result.gone:
                webhooks.mark_retry(event.id, tries, now, result.error)
                webhooks.disable(self.campaign_id, self.name, hook.url, now)
                log.error("campaign=%s webhook %s answered 410 Gone: its deliveries stop until "
                          "the service restarts or webhook.url changes; events are kept",
                          self.name, endpoint(hook.url))
                return
            if now - from_db(event.created_at) >= webhooks.age_limit(hook):
                webhooks.mark_failed(event.id, tries, result.error)
                log.error("campaign=%s webhook event %s (%s) given up after %d tries over "
                          "give_up_after_h (%sh): %s", self.name, event.key, event.type, tries,
                          hook.give_up_after_h, result.error)
                return
            delay = next_try_delay(tries, hook, result.retry_after, self._rng)
            webhooks.mark_retry(event.id, tries, now + dt.timedelta(seconds=delay),
                                result.error)
        (log.warning if not self._failing else log.info)(
            "campaign=%s webhook %s: event %s try %d failed (%s); next try in %.1f s",
            self.name, endpoint(hook.url), event.key, tries, result.error, delay)
        self._failing = True
