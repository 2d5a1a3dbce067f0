"""The dialing engine: state moves, claims, originates, and reaping of lost attempts.

The scheduler (agi_campaign.service) calls `tick_states()` every tick, `dial(name)` every tick
for each campaign (one job per campaign, so one campaign's delay_ms never holds up another),
and `reconcile()` every few seconds.

Concurrency is capped by counting attempts in flight in the database: an attempt is in flight
from its claim (before the originate is sent) until it ends, which happens only once the
callee's channel is gone: on the local path the `result` script runs after Dial() hung the
callee up; on the direct path an unanswered call's `failed` extension runs after the channel
went, and an answered call, recorded by `connect` while its channel was still up, is ended here
when Asterisk's Hangup event for that channel arrives (answered_recorded, on_ami_event). So
max_channels holds whatever delay_ms is.
"""
import collections
import datetime
import logging
import threading

from agi_campaign import campaigns, heartbeat, lifecycle, weektime
from agi_campaign.claim import claim_gated
from agi_campaign.clock import to_db
from agi_campaign.db import database
from agi_campaign.errors import (AgiCampaignError, AmiError, AmiNotConnected, AmiNotSent,
                                 AmiTimeout, NotFoundError)
from agi_campaign.gate import Limits, in_flight_count
from agi_campaign.lifecycle import CampaignState
from agi_campaign.models import IN_FLIGHT_STATUSES, Attempt, Campaign, NumberStatus, Outcome
from agi_campaign.originate import ASTDB_FAMILY, astdb_key, originate_action, parse_channel_id
from agi_campaign.pacing import Pacer
from agi_campaign.phone import mask

log = logging.getLogger(__name__)

ORIGINATE_FAILURE_GRACE_S = 10.0
RECONCILE_MIN_AGE_S = 15.0
RECONCILE_ABSENT_S = 5.0
ORPHAN_MIN_AGE_S = 10.0  # a gone node's attempt is settled once this old (_reconcile_server)
STALE_CLAIM_S = ORPHAN_MIN_AGE_S / 2  # a claim slower than this is not dialed (_give_back)
# After an AMI (re)connection, wait this long before originating on that server: Asterisk accepts
# AMI logins before it is fully booted and refuses originates until then ("PBX requires
# Asterisk to be fully booted"); FullyBooted is a `system` event our minimal AMI user can't read.
AMI_SETTLE_S = 2.0
REFUSED_BACKOFF_S = 5.0
# A direct path's answered call recorded by `connect` ends at its channel's Hangup event. Until
# a first Hangup event has been seen (the AMI user's eventfilter may let none through: warned
# once, see dialplan/README.md), it ends this long after the record instead. Once events are
# known to come, one that is missing (lost in an AMI reconnection, or a channel that outlives
# `connect`, e.g. transferred) leaves the attempt to reconcile, which ends it from its row when
# the channel is gone.
HANGUP_EVENT_WAIT_S = 3.0


def completion_counts(campaign_id):
    """(pending numbers exist: 0/1, attempts in flight) read in ONE statement, so in one
    snapshot: a retryable result commits "attempt ended" and "number pending again" together,
    and two separate reads could see neither and complete a campaign with a number left."""
    p = database.param
    flight = ", ".join(p for _ in IN_FLIGHT_STATUSES)
    row = database.execute_sql(
        "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM number WHERE campaign_id = %s AND "
        "status = %s LIMIT 1) AS due), (SELECT COUNT(*) FROM attempt WHERE campaign_id = %s "
        "AND status IN (%s))" % (p, p, p, flight),
        (campaign_id, NumberStatus.PENDING.value, campaign_id) + IN_FLIGHT_STATUSES).fetchone()
    return int(row[0]), int(row[1])


class Engine:
    """`instance` names this deployment in channel ids and AstDB keys (agi_campaign.deployment):
    events and channels of another dialer sharing the Asterisk are never taken for ours.

    `config` may be replaced by a live reload (agi_campaign.service.Service.reload): each tick
    reads it once. `last_tick_m` / `last_tick_at`: the monotonic / wall-clock time the states
    tick last completed (None before the first), for the heartbeat and health checks.
    """

    def __init__(self, config, clock, amis, recorder, instance, tick_s=None, metrics=None,
                 node=None, spacing_clock=None):
        self.config = config
        self.node = node  # this node's id (its service_heartbeat row), kept on its attempts
        # the clock delay_ms and max_cps spacings are kept on: None, the gate's own (the
        # database's on PostgreSQL); tests on a fake clock pass theirs
        self.spacing_clock = spacing_clock
        self.metrics = metrics  # agi_campaign.metrics.Metrics (claim latency), or None
        self.instance = instance
        self.clock = clock
        self.amis = amis
        self.recorder = recorder
        self.tick_s = tick_s if tick_s is not None else config.service.tick_ms / 1000.0
        self.pacers = {name: Pacer(clock.monotonic) for name in config.campaigns}
        self.draining = False
        self._lock = threading.Lock()
        self._failed = {}
        self._refused = {}
        self._recorded = {}  # (attempt id, token) -> (deadline, outcome): awaiting their Hangup
        self._hangup_events_seen = False
        self._warned_no_hangup = False
        self._absent = {}  # server -> {(attempt id, token): first pass it was absent}
        self._down_since = {}  # server -> monotonic time AMI was first seen down
        self._ready_at = {}
        self._ids = {}  # campaign name -> id (limits' peers)
        self._adopted = {}  # server -> gone nodes whose attempts its last pass took over
        self.last_tick_m = None  # monotonic time the last tick_states completed (health)
        self.last_tick_at = None
        self.last_run_m = None  # monotonic time tick_states last began (liveness: health.alive)

    # ---- states -------------------------------------------------------------------------
    def tick_states(self):
        self.last_run_m = self.clock.monotonic()
        self.reap_failed_originates()
        now, config = self.clock.now(), self.config
        for row in Campaign.select().where(Campaign.name.in_(list(config.campaigns))):
            cfg = config.campaigns[row.name]
            pending, in_flight = completion_counts(row.id)
            window = weektime.window_open(cfg.week_time, cfg.timezone, now)
            target = lifecycle.automatic_target(
                state=row.state, ctype=cfg.type, now=now, start=cfg.start, end=cfg.end,
                window_open=window, pending=pending, in_flight=in_flight)
            if target:
                campaigns.move(row, target[0], target[1], now, expect=row.state)
        self.last_tick_m, self.last_tick_at = self.clock.monotonic(), self.clock.now()

    # ---- dialing ------------------------------------------------------------------------
    def dial(self, name):
        """Start as many calls for campaign `name` as pacing allows during one tick (none once
        a reload removed it)."""
        cfg = self.config.campaigns.get(name)
        if cfg is None:
            return
        ami = self.amis[cfg.server]
        pacer = self.pacers[name]
        deadline = self.clock.monotonic() + self.tick_s
        if self.clock.monotonic() < self._ready_at.get(cfg.server, 0.0):
            return
        while not self.draining and ami.connected:
            row = Campaign.get_or_none(Campaign.name == name)
            if row is None or row.state != CampaignState.RUNNING.value:
                return
            in_flight = in_flight_count(row.id)
            # The local pacer spares this node claims the gate would refuse; the gate (in the
            # claim's transaction) decides for every node and stamps the attempts with the
            # time it checked the spacing at, so recorded starts are as far apart as allowed.
            now, mark = self.clock.now(), self.clock.monotonic()
            window = weektime.window_open(cfg.week_time, cfg.timezone, now)
            allowed = pacer.allowed(in_flight, cfg.max_channels, cfg.delay_ms, window, at=mark)
            if allowed:
                began = self.clock.monotonic()
                claimed, admission = claim_gated(
                    self.limits(cfg, row.id), allowed, self.clock.now, cfg.dnc_lists,
                    cfg.max_attempts,
                    callee_hours=cfg.callee_hours, timezone=cfg.timezone, node=self.node,
                    spacing_clock=self.spacing_clock)
                took = self.clock.monotonic() - began
                if self.metrics is not None:
                    self.metrics.claimed(name, took)
                if claimed and took > STALE_CLAIM_S:
                    self._give_back(claimed, took)
                    return
                if not claimed:
                    # nothing due, or a limit shared with other campaigns or nodes (the gate)
                    wait = admission.wait_s
                    if admission.allowed or wait <= 0 or (
                            self.clock.monotonic() + wait >= deadline):
                        return
                    self.clock.sleep(wait)
                    continue
                pacer.started(len(claimed), at=mark)
                self._originate(claimed, cfg, row.id, ami)
            wait = pacer.wait_s(cfg.delay_ms)
            if not allowed and wait <= 0:
                return
            if self.clock.monotonic() + wait >= deadline:
                return
            self.clock.sleep(max(wait, 0.001))  # never a sleep too short to move a clock

    def _give_back(self, claimed, took):
        """Claims that took too long to come back (this node stalled: a frozen VM, a held-up
        thread) are not dialed: other nodes may already have taken this node for gone and
        settled them. They end `refused` (no call, no attempt counted)."""
        log.warning("a claim of %d number(s) took %.1f s: not dialed (another node may have "
                    "settled it meanwhile); the numbers are claimed again", len(claimed), took)
        with self._lock:
            for item in claimed:
                self._refused[item.attempt_id] = "claim took %.1f s: not dialed" % took

    def limits(self, cfg, campaign_id):
        """The gate's limits of campaign `cfg` (id `campaign_id`) under the running config."""
        server = self.config.servers[cfg.server]
        peers = ()
        if server.max_channels is not None or server.max_cps is not None:
            others = [c for c in self.config.campaigns.values()
                      if c.server == cfg.server and c.name != cfg.name]
            ids = self._campaign_ids([c.name for c in others])
            peers = tuple((ids[c.name], c.max_channels, c.max_attempts) for c in others
                          if c.name in ids)
        return Limits(campaign_id=campaign_id, max_channels=cfg.max_channels,
                      delay_ms=cfg.delay_ms, server=cfg.server,
                      server_max_channels=server.max_channels, server_max_cps=server.max_cps,
                      peers=peers)

    def _campaign_ids(self, names):
        """{name: campaign id} (ids never change: kept once read)."""
        missing = [n for n in names if n not in self._ids]
        if missing:
            for row in Campaign.select(Campaign.id, Campaign.name).where(
                    Campaign.name.in_(missing)):
                self._ids[row.name] = row.id
        return self._ids

    def _originate(self, claimed, cfg, campaign_id, ami):
        """Send the Originates of a claim, written to AMI at once (AmiClient.send_many)."""
        server = self.config.servers[cfg.server]
        actions = [originate_action(item, cfg, server, campaign_id, self.instance)
                   for item in claimed]
        if log.isEnabledFor(logging.DEBUG):  # mask() parses the number: not for nothing
            for item in claimed:
                log.debug("attempt=%s campaign=%s number=%s originate server=%s",
                          item.attempt_id, cfg.name, mask(item.phone), cfg.server)
        for item, future in zip(claimed, ami.send_many(actions)):
            future.add_done_callback(
                lambda f, item=item, server=cfg.server: self._originate_done(item, server, f))

    def _originate_done(self, item, server, future):
        err = future.exception()
        if err is None:
            return
        if isinstance(err, AmiNotSent):
            # The action provably never left (no connection to write it on): no call, so the
            # attempt is `refused` and does not count, like an Originate Asterisk refused.
            with self._lock:
                self._refused[item.attempt_id] = "originate not sent: %s" % (err,)
            return
        if isinstance(err, (AmiNotConnected, AmiTimeout)):
            # Asterisk may or may not have the call: reconcile() decides once AMI is back.
            log.warning("attempt=%s originate unconfirmed: %s", item.attempt_id, err)
            return
        # This runs on the AMI reader thread: no database work here; the reaper finishes it.
        # Asterisk did not queue the call: the attempt is `refused` (it does not count), and
        # the server rests REFUSED_BACKOFF_S so that a shutting-down or misconfigured Asterisk
        # is not hammered.
        note = "originate refused: %s" % (err,)
        log.warning("attempt=%s %s", item.attempt_id, note)
        with self._lock:
            self._refused[item.attempt_id] = note
            self._ready_at[server] = self.clock.monotonic() + REFUSED_BACKOFF_S

    def _finish(self, attempt_id, outcome, note, token=None):
        """End an attempt (only if `token`, when given, is its token; an unknown attempt or
        another token changes nothing)."""
        try:
            self.recorder.finish(attempt_id, outcome, self.clock.now(), note=note, token=token)
        except NotFoundError:
            pass
        except AgiCampaignError:
            log.exception("attempt=%s could not be finished as %s", attempt_id, outcome.value)

    # ---- AMI events ---------------------------------------------------------------------
    def on_ami_state(self, server_name, connected):
        """A (re)connected server dials again only after AMI_SETTLE_S; a lost one starts its
        unreachable clock (see _reap_unreachable)."""
        if not connected:
            self._down_since.setdefault(server_name, self.clock.monotonic())
        else:
            self._down_since.pop(server_name, None)
            self._ready_at[server_name] = self.clock.monotonic() + AMI_SETTLE_S
            log.info("server=%s AMI connected; dialing resumes in %.0f s", server_name,
                     AMI_SETTLE_S)

    def answered_recorded(self, attempt_id, token, outcome):
        """A direct path's answered call, recorded by `connect` (routes.Router's on_recorded):
        `outcome` is (dial_status, hangup_cause, billsec_s); ended at its Hangup event."""
        with self._lock:
            self._recorded[(attempt_id, token)] = (
                self.clock.monotonic() + HANGUP_EVENT_WAIT_S, outcome)

    def _end_recorded(self, ids, outcome, wait, note=None):
        try:
            self.recorder.record_result(*ids, outcome[0], outcome[1], outcome[2], None,
                                        self.clock.now(), note=note, wait=wait)
        except NotFoundError:
            pass
        except AgiCampaignError:
            log.exception("attempt=%s could not be ended", ids[0])

    def on_ami_event(self, server_name, event):
        name = event.get("Event")
        if name == "Hangup":
            ids = parse_channel_id(event.get("Uniqueid"), self.instance)
            with self._lock:
                self._hangup_events_seen = True
                entry = self._recorded.pop(ids, None) if ids else None
            if entry is not None:  # the channel is gone: its attempt ends (queued, not waited)
                self._end_recorded(ids, entry[1], wait=False)
            return
        if name != "OriginateResponse" or event.get("Response") == "Success":
            return
        ids = parse_channel_id(event.get("ActionID"), self.instance)
        if ids:  # ours (instance): another dialer on this Asterisk sends these events too
            with self._lock:
                self._failed.setdefault(ids, (
                    self.clock.monotonic() + ORIGINATE_FAILURE_GRACE_S,
                    "originate failed, reason %s" % event.get("Reason", "")))

    def reap_failed_originates(self):
        """Originates that failed and whose dialplan never reported: end them as failed.
        While no Hangup event has ever come, recorded answered calls HANGUP_EVENT_WAIT_S old:
        end them from their record (see HANGUP_EVENT_WAIT_S)."""
        now_m = self.clock.monotonic()
        with self._lock:
            due = [(aid, r) for aid, (t, r) in self._failed.items() if t <= now_m]
            for aid, _ in due:
                del self._failed[aid]
            refused, self._refused = self._refused, {}
            late = [] if self._hangup_events_seen else [
                (ids, o) for ids, (t, o) in self._recorded.items() if t <= now_m]
            for ids, _ in late:
                del self._recorded[ids]
            warn = late and not self._warned_no_hangup
            self._warned_no_hangup = self._warned_no_hangup or bool(warn)
        if warn:
            log.warning("no Hangup event from Asterisk for %d answered call(s) %.0f s after "
                        "their end: each holds its channel slot that long; let the Hangup "
                        "events of agi-campaign's channels through the AMI user's eventfilter "
                        "(dialplan/README.md, AMI user)", len(late), HANGUP_EVENT_WAIT_S)
        for ids, outcome in late:
            self._end_recorded(ids, outcome, wait=True, note="no Hangup event")
        for aid, note in refused.items():
            self._finish(aid, Outcome.REFUSED, note[:200])
        for (aid, token), note in due:
            self._finish(aid, Outcome.FAILED, note[:200], token=token)

    # ---- reconciliation -----------------------------------------------------------------
    def reconcile(self):
        """Attempts in flight whose call no longer exists on their Asterisk are finished: from
        the result the dialplan saved in AstDB, or else as `lost`.

        An attempt must be older than RECONCILE_MIN_AGE_S and absent from CoreShowChannels on
        two passes at least RECONCILE_ABSENT_S apart (its result may be on its way). Each
        server is reconciled on its own: an error on one never stops the others.
        """
        self.reap_failed_originates()
        for name, ami in self.amis.items():
            try:
                if not ami.connected:
                    self._reap_unreachable(name)
                    continue
                self._down_since.pop(name, None)
                live = self._live_attempts(ami)
                self._reconcile_server(name, ami, live)
            except AmiError as err:
                log.warning("server=%s reconcile skipped: %s", name, err)
            except Exception:  # boundary: a database error on one server's pass
                log.exception("server=%s reconcile failed; retried on the next pass", name)

    def _live_attempts(self, ami):
        """(attempt id, token) of every channel of ours that Asterisk still has."""
        events = ami.collect({"Action": "CoreShowChannels"}, "CoreShowChannelsComplete", 10)
        live = set()
        for ev in events:
            for key in ("Uniqueid", "Linkedid"):
                ids = parse_channel_id(ev.get(key), self.instance)
                if ids:
                    live.add(ids)
        return live

    def _in_flight_here(self, name, now):
        """This node's share of the attempts in flight on server `name`: (its own and those of
        no node, those of nodes that are gone (no live heartbeat: killed, host lost, cut from
        the database)), as lists of rows (id, token, node, created_at). A live node's attempts
        are its own business: never settled here."""
        rows = list(Attempt.select(Attempt.id, Attempt.token, Attempt.node,
                                   Attempt.created_at).where(
            (Attempt.server == name) & (Attempt.status.in_(IN_FLIGHT_STATUSES))))
        nodes = {r.node for r in rows if r.node is not None and r.node != self.node}
        gone = nodes - heartbeat.live_ids(now) if nodes else set()
        own = [r for r in rows if r.node is None or r.node == self.node]
        orphans = [r for r in rows if r.node in gone]
        adopted = collections.Counter(r.node for r in orphans)
        for node, count in adopted.items():
            if node not in self._adopted.get(name, ()):
                log.warning("server=%s node %s is gone (no heartbeat): reconciling its %d "
                            "attempt(s) in flight", name, node, count)
        self._adopted[name] = set(adopted)
        return own, orphans

    def _reconcile_server(self, name, ami, live):
        """Reconcile this node's attempts on server `name` and those of gone nodes
        (`_in_flight_here`). A gone node's results can only come from Asterisk now: its
        attempts absent from the channels are settled at the first pass once
        ORPHAN_MIN_AGE_S old (its own, RECONCILE_MIN_AGE_S old and absent on two passes
        RECONCILE_ABSENT_S apart). The age guards a node taken for gone while it still dials
        (its heartbeat job held up): an originate it sent that late is still on its way.
        Take-over time: staleness (5 s) + at most one pass (5 s), the claim at least
        ORPHAN_MIN_AGE_S old."""
        now, now_m = self.clock.now(), self.clock.monotonic()
        old = to_db(now - datetime.timedelta(seconds=RECONCILE_MIN_AGE_S))
        settled = to_db(now - datetime.timedelta(seconds=ORPHAN_MIN_AGE_S))
        own, orphan_rows = self._in_flight_here(name, now)
        orphans = {(r.id, r.token) for r in orphan_rows if r.created_at <= settled}
        in_flight = orphans | {(r.id, r.token) for r in own if r.created_at <= old}
        absent = self._absent.setdefault(name, {})
        for key in list(absent):
            if key not in in_flight or key in live:
                del absent[key]
        for key in in_flight - live:
            first = absent.setdefault(key, now_m)
            if key in orphans or now_m - first >= RECONCILE_ABSENT_S:
                del absent[key]
                if not self._recover_saved(ami, *key):
                    self._finish(key[0], Outcome.LOST, "no call on %s at reconcile" % name,
                                 token=key[1])

    def _recover_saved(self, ami, attempt_id, token):
        """End an attempt whose channel is gone from what `connect` recorded (direct path), or
        from the result the dialplan saved in AstDB when it could not reach us."""
        if self._end_from_record(attempt_id, token, "recorded by connect; ended at reconcile"):
            return True
        saved = saved_result(ami, astdb_key(self.instance, attempt_id))
        if saved is None or saved[0] != token:
            return False
        _, dial_status, cause, answered, dialed = saved
        self.recorder.record_result(attempt_id, token, dial_status, cause, answered or None,
                                    dialed or None, self.clock.now(),
                                    note="recovered from AstDB at reconcile")
        log.info("attempt=%s result recovered from AstDB: %s", attempt_id, dial_status)
        return True

    def _end_from_record(self, attempt_id, token, note):
        """End an attempt whose channel is gone from the outcome `connect` recorded on its row
        (direct path); False when it has none."""
        row = Attempt.get_or_none((Attempt.id == attempt_id) & (Attempt.token == token))
        if row is None or not row.dial_status:
            return False
        with self._lock:
            self._recorded.pop((attempt_id, token), None)
        self._end_recorded((attempt_id, token), (row.dial_status, row.hangup_cause,
                                                 row.billsec_s), wait=True, note=note)
        return True

    def _reap_unreachable(self, name):
        """A server we have not been able to ask for service.stuck_after_s (measured from when
        it was first seen unreachable, not from the claims): this node's own attempts there
        become lost, and gone nodes' when no other node is live (never a live node's, nor a
        gone node's that another live node may settle by reaching the server). A server
        that comes back sooner is reconciled against its channels and AstDB as usual."""
        now_m = self.clock.monotonic()
        since = self._down_since.setdefault(name, now_m)
        if now_m - since < self.config.service.stuck_after_s:
            return
        now = self.clock.now()
        own, orphans = self._in_flight_here(name, now)
        if heartbeat.live_ids(now) - {self.node}:
            orphans = []  # a gone node's: left to another live node, which may reach the server
        note = "server %s unreachable for stuck_after_s" % name
        for row in own + orphans:
            if not self._end_from_record(row.id, row.token, note + "; recorded by connect"):
                self._finish(row.id, Outcome.LOST, note, token=row.token)


def saved_result(ami, key):
    """(token, DIALSTATUS, HANGUPCAUSE, ANSWEREDTIME, DIALEDTIME) saved by the dialplan's hangup
    handler in AstDB (family ASTDB_FAMILY, `key` from originate.astdb_key), or None if there is
    none or AMI cannot tell."""
    try:
        events = ami.collect({"Action": "DBGet", "Family": ASTDB_FAMILY,
                              "Key": key}, "DBGetComplete", 5)
    except AmiError:
        return None
    for ev in events:
        parts = (ev.get("Val") or "").split("^")
        if ev.get("Event") == "DBGetResponse" and len(parts) == 5:
            return tuple(parts)
    return None
