"""`agi-campaign status`: per campaign its state, why it is not dialing, and its counts.

``numbers`` counts every NumberStatus (``dnc``: numbers skipped as Do-Not-Call when they were
claimed; ``removed``: taken out by ``numbers remove``) and ``total``, their sum, plus
``blocked``: pending numbers that are now on one of the campaign's Do-Not-Call lists (added
after the import); they are part of ``pending`` and become ``dnc`` when the claim reaches them.
``outside_hours``: pending numbers whose calling hours (``callee_hours``) are closed now in
one of their zones, also part of ``pending``; ``hours_open_next`` (top level) is when the first
of them opens (ISO text, None when none waits or their hours never open in all their zones).
``forecast``: when the campaign is expected to finish (agi_campaign.forecast through
agi_campaign.progress): ``finishes_at``, ``remaining``, ``reason``, ``cannot_finish_before_end``,
``left_at_end`` and the figures it used; the text shows it on one line.
``webhook`` (only for a campaign with a webhook or with outbox rows): its backlog as
webhooks.backlog gives it (pending, failed, oldest_s), the url, and ``disabled`` (when its
receiver answered 410 Gone: {"url", "at"}, else None).

Times are shown in the campaign's time zone with its UTC offset, to the second
(agi_campaign.clock.show_time): ISO in ``since`` and ``hours_open_next``, text in the reasons.
The service line (agi_campaign.heartbeat) uses the campaigns' zone when they all have one, else
UTC (`display_zone`). STARTNOW and READY reasons promise the service's pick-up only while a
service runs (its heartbeat is live); otherwise they say to start it.
"""

import peewee

from agi_campaign import forecast, gate, heartbeat, lease, progress, weektime, webhooks
from agi_campaign.claim import HoursCheck
from agi_campaign.clock import from_db, iso_as_text, show_time, to_db
from agi_campaign.db import database, is_postgres
from agi_campaign.lifecycle import CampaignState
from agi_campaign.models import (IN_FLIGHT_STATUSES, Attempt, Campaign, Number,
                                 NumberStatus)

S = CampaignState


def number_counts(campaign_id):
    counts = {s.value: 0 for s in NumberStatus}
    query = (Number.select(Number.status, peewee.fn.COUNT(Number.id).alias("n"))
             .where(Number.campaign == campaign_id).group_by(Number.status))
    for row in query:
        counts[row.status] = row.n
    counts["total"] = sum(counts.values())
    return counts


def blocked_count(campaign_id, dnc_lists, pending):
    """How many of the campaign's pending numbers (``pending`` of them: ``number_counts``) are
    on one of ``dnc_lists``; a number on several lists counts once.

    One COUNT that walks the smaller side: on SQLite, from the pending numbers (index
    number(campaign, status, ...)) probing dnc_entry(list_name, phone), or from the lists' entries
    probing number(campaign, phone); which side is smaller is read with a COUNT bounded by
    ``pending + 1``. PostgreSQL's planner chooses itself (a hash semi-join at this size).
    Measured at 900k pending numbers and 100k entries: SQLite 0.1-0.15 s (1.0 s walking the
    numbers); PostgreSQL 0.25-0.3 s once the tables are analysed (6 s before autovacuum's first
    ANALYZE after a bulk import).
    """
    lists = list(dnc_lists or ())
    if not lists or not pending:
        return 0
    p = database.param
    marks = ", ".join([p] * len(lists))
    from_numbers = ("SELECT COUNT(*) FROM number n WHERE n.campaign_id = {p} AND n.status = {p} "
                    "AND EXISTS (SELECT 1 FROM dnc_entry d WHERE d.list_name IN ({m}) "
                    "AND d.phone = n.phone)")
    if not is_postgres():
        entries = database.execute_sql(
            "SELECT COUNT(*) FROM (SELECT 1 FROM dnc_entry WHERE list_name IN (%s) LIMIT %s) "
            "AS e" % (marks, p), lists + [pending + 1]).fetchone()[0]
        if entries < pending:
            # `+n.status` keeps SQLite off the status index: the IN list drives the search
            from_numbers = ("SELECT COUNT(*) FROM number n WHERE n.campaign_id = {p} AND "
                            "+n.status = {p} AND n.phone IN (SELECT d.phone FROM dnc_entry d "
                            "WHERE d.list_name IN ({m}))")
    return database.execute_sql(from_numbers.format(p=p, m=marks),
                                [campaign_id, NumberStatus.PENDING.value] + lists).fetchone()[0]


def next_due(campaign_id):
    value = (Number.select(peewee.fn.MIN(Number.next_attempt_at))
             .where((Number.campaign == campaign_id)
                    & (Number.status == NumberStatus.PENDING.value)).scalar())
    return from_db(value)


def hours_waiting(campaign_id, cfg, now):
    """(pending numbers outside their calling hours now, due numbers inside them, the first
    instant one of the former opens or None) for a campaign with callee_hours, else (0, None,
    None).

    Reads every pending number (phone, extra, next_attempt_at) and checks its zones as the
    claim does (zones cached per number, openings per set of zones). Measured: 4-5 s for
    100,000 pending US numbers (about 50 us a number, phonenumbers' parse and number type);
    nothing without callee_hours.
    """
    if cfg is None or cfg.callee_hours is None:
        return 0, None, None
    check = HoursCheck(cfg.callee_hours, cfg.timezone, now)
    waiting, dialable, first = 0, 0, None
    stamp = to_db(now)
    rows = (Number.select(Number.phone, Number.extra, Number.next_attempt_at)
            .where((Number.campaign == campaign_id)
                   & (Number.status == NumberStatus.PENDING.value)).tuples().iterator())
    for phone, extra, due in rows:
        opens = check.opens(check.zones(phone, extra))
        if opens is not None and opens <= now:
            dialable += due <= stamp
            continue
        waiting += 1
        if opens is not None and (first is None or opens < first):
            first = opens
    return waiting, dialable, first


NO_SERVICE = "start the service: agi-campaign run"


def reason(row, cfg, now, counts, in_flight, hours=(0, None, None), service_running=True,
           server_limit=None):
    """Why the campaign is (not) dialing, in words; `hours` as hours_waiting gives it;
    `service_running`: whether a service's heartbeat is live (heartbeat.read);
    `server_limit`: the server's limit that stopped its last claim (gate.blocked_reasons)."""
    state = S(row.state)
    if state == S.PAUSED:
        return "paused (agi-campaign campaign resume %s)" % row.name
    if state == S.COMPLETED:
        return "completed"
    if state == S.STARTNOW:
        return "start requested; %s" % ("the service picks it up within a second"
                                         if service_running else NO_SERVICE)
    if state == S.READY:
        if cfg.type == "on_demand":
            return "waiting for start (agi-campaign campaign start %s)" % row.name
        if cfg.start is not None and now < cfg.start:
            return "waiting for start at %s" % show_time(cfg.start, cfg.timezone)
        if not weektime.window_open(cfg.week_time, cfg.timezone, now):
            nxt = weektime.next_open(cfg.week_time, cfg.timezone, now)
            return "outside window until %s" % (show_time(nxt, cfg.timezone) if nxt else "never")
        if counts["pending"] == 0:
            return "no numbers to dial (import some)"
        return "window open; %s" % ("the service starts it within a second"
                                    if service_running else NO_SERVICE)
    if in_flight >= cfg.max_channels:
        return "no free channel (%d of %d in use)" % (in_flight, cfg.max_channels)
    if server_limit is not None:
        return "%s (%d call(s) of this campaign in flight)" % (server_limit, in_flight)
    waiting, dialable, first = hours
    if waiting and dialable == 0:
        return ("%d number(s) outside their calling hours (callee_hours %r); the next opens %s"
                % (waiting, cfg.callee_hours_text,
                   "at " + show_time(first, cfg.timezone) if first
                   else "never in all their zones"))
    due = next_due(row.id)
    if due is not None and due > now:
        return "no due numbers until %s" % show_time(due, cfg.timezone)
    if due is None:
        return "waiting for %d call(s) in flight" % in_flight
    return "dialing"


def webhook_status(cfg, backlog, gone):
    """The ``webhook`` entry of a campaign (see the module docstring), or None."""
    hook = cfg.webhook if cfg is not None else None
    if hook is None and backlog is None:
        return None
    out = dict(backlog or {"pending": 0, "failed": 0, "oldest_s": None})
    out["url"] = hook.url if hook is not None else None
    out["disabled"] = gone
    return out


def campaign_status(row, cfg, now, service_running=True, webhook=None,
                    gap_s=forecast.DEFAULT_GAP_S):
    """One campaign's row (see the module docstring); ``gap_s``: the forecast's wait for the
    next tick (``tick_gap_s``)."""
    counts = number_counts(row.id)
    counts["blocked"] = blocked_count(row.id, cfg.dnc_lists if cfg else (), counts["pending"])
    hours = hours_waiting(row.id, cfg, now) if counts["pending"] else (0, None, None)
    counts["outside_hours"] = hours[0]
    in_flight = gate.in_flight_count(row.id)
    attempts = Attempt.select().where(Attempt.campaign == row.id).count()
    zone = cfg.timezone if cfg else "UTC"
    return {
        "name": row.name, "type": row.type, "server": row.server, "state": row.state.upper(),
        "since": show_time(row.state_changed_at, zone, iso=True),
        "reason": (reason(row, cfg, now, counts, in_flight, hours, service_running,
                          gate.blocked_reasons([row.id], now).get(row.id)) if cfg
                   else "not in the config file"),
        "numbers": counts, "attempts": attempts, "in_flight": in_flight,
        "hours_open_next": show_time(hours[2], zone, iso=True),
        **({"webhook": webhook} if webhook is not None else {}),
        "forecast": (progress.forecast_of(row, cfg, now, gap_s, counts["pending"] + in_flight)
                     if cfg is not None
                     else dict(forecast.NONE, reason="not in the config file")),
    }


def tick_gap_s(config):
    """How long a freed channel waits on average for the next tick: half of it."""
    return config.service.tick_ms / 2000.0


def status(config, now, name=None, service=False):
    """The rows of every campaign (or of `name`); `service`: the heartbeat (heartbeat.read),
    read here when not given."""
    if service is False:
        service = heartbeat.read(now)
    running = bool(service and service["running"])
    query = Campaign.select().order_by(Campaign.name)
    if name is not None:
        query = query.where(Campaign.name == name)
    backlog, gone = webhooks.backlog(now), webhooks.disabled()
    return [campaign_status(row, config.campaigns.get(row.name), now, running, webhook_status(
        config.campaigns.get(row.name), backlog.get(row.name), gone.get(row.name)),
        tick_gap_s(config)) for row in query]


def nodes(now):
    """Every node seen on this database (heartbeat.read_all, the live ones first), each with
    `node` (its id), `calls_in_flight`, `campaigns` ({name: calls in flight}) and `webhooks`
    (the campaigns whose events it delivers: their lease): what it owns. A gone node's calls
    are being taken over by the live ones (agi_campaign.engine), its leases when they expire."""
    rows = database.execute_sql(
        "SELECT a.node, c.name, COUNT(*) FROM attempt a JOIN campaign c ON c.id = a.campaign_id "
        "WHERE a.status IN (%s) AND a.node IS NOT NULL GROUP BY a.node, c.name" % ", ".join(
            database.param for _ in IN_FLIGHT_STATUSES), IN_FLIGHT_STATUSES).fetchall()
    owned = {}
    for node, name, count in rows:
        owned.setdefault(node, {})[name] = count
    names = {"webhooks:%d" % row.id: row.name
             for row in Campaign.select(Campaign.id, Campaign.name)}
    delivers = {}
    for lease_name, (holder, expires_at) in lease.holders("webhooks:").items():
        if expires_at > now and lease_name in names:
            delivers.setdefault(holder, []).append(names[lease_name])
    infos = heartbeat.read_all(now)
    infos.sort(key=lambda info: not info["running"])
    return [dict(info, calls_in_flight=sum(owned.get(info["node"], {}).values()),
                 campaigns=owned.get(info["node"], {}),
                 webhooks=sorted(delivers.get(info["node"], ()))) for info in infos]


def node_lines(infos, zone):
    """`nodes` as text: one line each, when there are several (one node: the service line
    says it all)."""
    if len(infos) < 2:
        return []
    live = sum(1 for info in infos if info["running"])
    lines = ["nodes: %d live of %d seen on this database" % (live, len(infos))]
    for info in infos:
        owned = ", ".join("%s %d" % item for item in sorted(info["campaigns"].items()))
        lines.append("  node %s on %s pid %s: %s, last heartbeat %s; calls in flight %d%s%s" % (
            info["node"], info["host"], info["pid"],
            "live" if info["running"] else ("stopped" if info["stopped_at"] else
                                            "GONE (its calls are taken over)"),
            show_time(info["beat_at"], zone), info["calls_in_flight"],
            " (%s)" % owned if owned else "",
            "; delivers webhooks of %s" % ", ".join(info["webhooks"])
            if info.get("webhooks") else ""))
    return lines


def display_zone(config):
    """The zone of times not tied to one campaign: the campaigns' one zone, else UTC."""
    zones = {cfg.timezone for cfg in config.campaigns.values()}
    return zones.pop() if len(zones) == 1 else "UTC"


def service_lines(service, zone, infos=()):
    """The service's line (heartbeat.line), its last reload's when there was one, and the
    nodes' (`node_lines` of `infos`)."""
    return [text for text in (heartbeat.line(service, zone), heartbeat.reload_line(service, zone))
            if text] + node_lines(list(infos), zone)


def render(rows, service=()):
    """`rows` as text, after the lines of `service` (service_lines)."""
    lines = list(service)
    for r in rows:
        c = r["numbers"]
        lines.append("%s [%s, %s] %s since %s — %s" % (
            r["name"], r["type"], r["server"], r["state"], iso_as_text(r["since"]), r["reason"]))
        notes = []
        if c.get("blocked"):
            notes.append("%d blocked by DNC" % c["blocked"])
        if c.get("outside_hours"):
            notes.append("%d outside calling hours%s" % (
                c["outside_hours"], ", next open " + iso_as_text(r["hours_open_next"])
                if r.get("hours_open_next") else ""))
        blocked = " (%s)" % "; ".join(notes) if notes else ""
        lines.append("  numbers %d: pending %d%s, in flight %d, done %d, failed %d, dnc %d, "
                     "removed %d; attempts %d, calls in flight %d" % (
                         c["total"], c["pending"], blocked, c["in_flight"], c["done"],
                         c["failed"], c["dnc"], c["removed"], r["attempts"], r["in_flight"]))
        if r.get("webhook") is not None:
            lines.append("  " + _render_webhook(r["webhook"]))
        if r.get("forecast") is not None:
            lines.append("  " + render_forecast(r["forecast"]))
    if not rows:
        lines.append("no campaigns")
    return "\n".join(lines)


def render_forecast(f):
    """A campaign's forecast (agi_campaign.forecast) as one line: "rough" while a prior fills
    in for calls not yet ended, CANNOT FINISH when the end comes first (with or without a
    finish within the forecast's horizon)."""
    if f["finishes_at"] is None:
        text = "forecast: none (%s)" % f["reason"]
    else:
        text = "forecast: %sfinishes %s; %d number(s) left, about %d attempt(s)" % (
            "rough (%d call(s) ended, a prior fills in), " % f["observed"]
            if f.get("rough") else "", iso_as_text(f["finishes_at"]), f["remaining"],
            f["attempts"])
    if f["per_minute"] is not None:
        text += " at %.1f a minute (limited by %s, %.1f s an attempt)" % (
            f["per_minute"], f["limited_by"], f["mean_attempt_s"])
    if f["cannot_finish_before_end"]:
        text += "; CANNOT FINISH before its end: about %d number(s) left unsettled then" % (
            f["left_at_end"])
    return text


def _render_webhook(w):
    oldest = " (oldest %.0f s)" % w["oldest_s"] if w["oldest_s"] is not None else ""
    text = "webhook %s: undelivered %d%s, failed %d" % (
        w["url"] or "(none configured: not delivered)", w["pending"], oldest, w["failed"])
    if w.get("disabled"):
        text += "; DISABLED: the receiver answered 410 Gone at %s (restart the service or " \
                "change webhook.url)" % w["disabled"]["at"]
    return text


__all__ = ["status", "render", "display_zone", "service_lines"]
