"""Several nodes on one PostgreSQL database (docs/DESIGN.md, "Several nodes"), against real
Asterisk 22 sandboxes and real `agi-campaign run` child processes, each with its own config file
(same database, servers and campaigns; its own FastAGI port, which its servers' agi_url names).
The database is a private PostgreSQL server per test (tests/integration/pgserver.py): three
nodes hold ~50 connections, and the machine's shared server (max_connections 100) also serves
the other tests and processes.

Calls are counted with Asterisk's own events (harness.ChannelMonitor, one per sandbox), in
Asterisk's own time (the events' Timestamp); the database is read only for what Asterisk
cannot tell: which node claimed an attempt, and when (attempt.created_at, stamped by the gate).
Every node runs on this host, so the test's wall clock, Asterisk's and the nodes' are one clock.
"""
import bisect
import collections
import json
import math
import time
import urllib.parse

import pytest

from agi_campaign import campaigns, gate
from agi_campaign.clock import SystemClock, from_db
from agi_campaign.config import load_config
from agi_campaign.models import (IN_FLIGHT_STATUSES, Attempt, Campaign, Number,
                                 ServiceHeartbeat, open_database)
from agi_campaign.testing import harness
from agi_campaign.testing.process import ServiceProcess
from agi_campaign.testing.sandbox import free_port

from tests.integration.support import (TcpProxy, campaign, check_invariants, cli, load,
                                       plan_numbers, state, wait_for)

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres, pytest.mark.timeout(600)]

# Short calls, few that ring out (a no-answer rings dial_timeout_s = 5 s, the config's least),
# so that 2,000 numbers and their retries fit in about two minutes.
MIX = [("answer", 70), ("busy", 10), ("noanswer", 4), ("congestion", 10), ("unavailable", 6)]
MAX_ATTEMPTS = 3
SETTLED = ("done", "failed", "dnc")

# Take-over bound (design: "staleness (5 s) + a reconcile pass (5 s)"): a SIGKILLed node is
# gone once its last beat is 5 s old (it beat at most 1 s before the kill); a call it left up
# ends at the latest ~6 s after the kill (a no-answer rings 5 s, plus call set-up) and its
# result, which cannot reach the dead node's FastAGI, waits in AstDB; a gone node's attempt is
# settled once engine.ORPHAN_MIN_AGE_S (10 s) old, so by max(5, 6, 10) s after the kill all
# are due, and a live node's next reconcile pass (every 5 s) settles them: 15 s; + 5 s for a
# loaded 2-core machine (a delayed scheduler job, a pass that waits for AMI or the database).
TAKEOVER_BOUND_S = 20.0
STAMP_ROUNDING_S = 0.001  # see the max_cps check on the database's stamps


def _epoch(stored):
    """A stored (naive UTC) time as epoch seconds, Asterisk's Timestamp scale."""
    return from_db(stored).timestamp()


def _digits(plan):
    return {phone[1:] for phone in plan}


class Node:
    """One `agi-campaign run` child process with its own config file and FastAGI port."""

    def __init__(self, workdir, servers, campaigns_, db_url, server_limits=None):
        workdir.mkdir()
        self.port = free_port()
        self.config_path = harness.write_config(
            workdir / "config.yaml", servers, self.port, campaigns_, db_url=db_url,
            server_limits=server_limits)
        self.service = ServiceProcess(self.config_path, workdir / "service.log", self.port)
        self.ids = []  # its node id (service_heartbeat row) at each start

    def start(self):
        self.service.start()
        pid = self.service.pid
        wait_for(lambda: ServiceHeartbeat.get_or_none(ServiceHeartbeat.pid == pid), 20, 0.1)
        self.ids.append(ServiceHeartbeat.get(ServiceHeartbeat.pid == pid).id)
        return self

    @property
    def id(self):
        return self.ids[-1]


def _prepare(config_path, plans):
    """Load every campaign's numbers and start the campaigns (before any node runs)."""
    config = load_config(str(config_path))
    open_database(config.database.url)
    now = SystemClock().now()
    campaigns.sync_campaigns(config, now)
    for name, plan in plans.items():
        load(name, list(plan), config_path.parent)
        campaigns.apply_command(name, "start", now)
    return config


def _in_flight_of(node_id):
    return Attempt.select().where((Attempt.node == node_id)
                                  & (Attempt.status.in_(IN_FLIGHT_STATUSES))).count()


def _settled():
    return Number.select().where(Number.status.in_(SETTLED)).count()


class Watch:
    """Polls until a condition holds, noting meanwhile every campaign's server-limit reason
    (gate.blocked_reasons: what `status` shows as "waiting for server X: ...")."""

    def __init__(self, names):
        self.ids = {Campaign.get(Campaign.name == n).id: n for n in names}
        self.reasons = collections.defaultdict(collections.Counter)  # name -> {text: polls}

    def until(self, predicate, timeout, step=0.2):
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            for cid, text in gate.blocked_reasons(list(self.ids), SystemClock().now()).items():
                self.reasons[self.ids[cid]][text] += 1
            if predicate():
                return time.monotonic() - began
            time.sleep(step)
        pytest.fail("condition not met within %s s" % timeout, pytrace=False)


def _take_over(node, watch):
    """SIGKILL `node`; seconds until no attempt of its node id is in flight in the database
    (the others took them over), and how many it had in flight at the kill."""
    node_id, had = node.id, _in_flight_of(node.id)
    killed_at = time.monotonic()
    node.service.kill()
    watch.until(lambda: _in_flight_of(node_id) == 0, TAKEOVER_BOUND_S + 60, step=0.1)
    return time.monotonic() - killed_at, had


def _explain_overlaps(mon):
    """Print every number Asterisk had in two calls at once: its legs and its attempts (what a
    failing check needs to be understood)."""
    up, overlapping = collections.Counter(), set()
    for _, number, step in list(mon.legs):
        up[number] += step
        if up[number] > 1:
            overlapping.add(number)
    for number in sorted(overlapping):
        print("OVERLAP +%s legs %s" % (number, [(round(at, 3), step) for at, n, step in mon.legs
                                                if n == number]))
        for a in Attempt.select().join(Number).where(Number.phone == "+" + number):
            print("  attempt %s node %s seq %s created %.3f ended %s outcome %s note %s" % (
                a.id, a.node, a.seq, _epoch(a.created_at),
                a.ended_at and round(_epoch(a.ended_at), 3), a.outcome, a.note))


def _most_in_one_second(times):
    """The most of `times` (sorted) in any window [t, t + 1 s)."""
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def test_nodes_three_nodes_two_servers_caps_hold_through_two_kills(asterisk, asterisk_factory,
                                                                   private_postgres, tmp_path):
    began = time.monotonic()
    postgres_url = private_postgres.url
    box_b = asterisk_factory()
    servers = {"a": asterisk, "b": box_b}
    # The campaigns' own max_channels on a server add up to more than the server's, and its
    # max_cps times the calls' mean length (~1 s) is about its max_channels: both limits bind.
    server_limits = {"a": {"max_channels": 20, "max_cps": 25},
                     "b": {"max_channels": 16, "max_cps": 20}}
    layout = {"a1": ("a", 14, 50000), "a2": ("a", 14, 50500),
              "b1": ("b", 11, 51000), "b2": ("b", 11, 51500)}
    plans = {name: plan_numbers(500, first, seed=first, mix=MIX, longest_hold_s=2)
             for name, (_, _, first) in layout.items()}
    camps = {name: campaign(server=server, max_channels=channels, max_attempts=MAX_ATTEMPTS,
                            delay_ms=0, retry_delay_s=1)
             for name, (server, channels, _) in layout.items()}
    nodes = [Node(tmp_path / ("node%d" % i), servers, camps, postgres_url, server_limits)
             for i in range(3)]
    _prepare(nodes[0].config_path, plans)
    total = sum(len(plan) for plan in plans.values())
    watch = Watch(list(plans))
    monitors = {"a": harness.ChannelMonitor(asterisk), "b": harness.ChannelMonitor(box_b)}
    takeovers = []
    with monitors["a"], monitors["b"]:
        try:
            for node in nodes:
                node.start()
            watch.until(lambda: _settled() >= 0.10 * total, 120)
            shown = cli(nodes[0].config_path, "status", "--json")
            assert shown.returncode == 0, shown.stderr
            listed = json.loads(shown.stdout)["nodes"]
            live = sorted(n["node"] for n in listed if n["running"])
            assert live == sorted(node.id for node in nodes), listed
            watch.until(lambda: _settled() >= 0.25 * total, 240)
            takeovers.append(("first kill, at 25 %", nodes[0].id) + _take_over(nodes[0], watch))
            nodes[0].start()  # back with a new node id: two nodes run through the second kill
            watch.until(lambda: _settled() >= 0.55 * total, 240)
            takeovers.append(("second kill, at 55 %", nodes[1].id) + _take_over(nodes[1], watch))
            watch.until(lambda: {state(name) for name in plans} == {"completed"}, 300, step=0.5)
        finally:
            for node in nodes:
                node.service.stop()
    elapsed = time.monotonic() - began
    for what, node_id, took, had in takeovers:
        print("FIGURES take-over (%s): node %s had %d attempts in flight; none left %.1f s "
              "after its SIGKILL (bound %.0f s, design 10-15 s)" % (what, node_id, had, took,
                                                                   TAKEOVER_BOUND_S))
    attempts = list(Attempt.select(Attempt, Number).join(Number))
    by_node = collections.Counter(a.node for a in attempts)
    print("FIGURES attempts by node id %s; seconds %.0f" % (dict(by_node), elapsed))

    for server, mon in monitors.items():
        _explain_overlaps(mon)
        names = [n for n, (s, _, _) in layout.items() if s == server]
        limit = server_limits[server]
        for name in names:
            others = set().union(*(_digits(plans[o]) for o in names if o != name))
            check_invariants(name, plans[name], mon, MAX_ATTEMPTS, limit["max_channels"],
                             others=others)
        peaks = {name: mon.peak_of(_digits(plans[name])) for name in names}
        # max_cps from Asterisk: the gate spaces claims 1/max_cps apart, so a window of 1 s
        # holds at most max_cps claims; each leg starts a few ms after its claim (commit,
        # originate, dialplan), and that latency varies from call to call (a loaded machine
        # can hold one leg back by an interval or more and release it beside the next), so a
        # window of leg starts may catch up to two more: max_cps + 2. The database's stamps
        # below are the exact check.
        starts = sorted(at for at, _, step in mon.legs if step > 0)
        busiest = _most_in_one_second(starts)
        # max_cps from the database: every node's claims of the server together. On
        # PostgreSQL the gate decides and stamps on the database's clock (gate.py), so the
        # stamps are the spacing instants themselves: neighbours are at least 1/max_cps apart
        # (1 ms allowed for rounding), and so is every second's worth of claims (the rate).
        stamps = sorted(_epoch(a.created_at) for a in attempts if a.server == server)
        closest = min(b - a for a, b in zip(stamps, stamps[1:]))
        per_second = math.ceil(limit["max_cps"])
        shortest_second = min(b - a for a, b in zip(stamps, stamps[per_second:]))
        waited = {name: sum(count for text, count in watch.reasons[name].items()
                            if text.startswith("waiting for server %s" % server))
                  for name in names}
        print("FIGURES server %s: peak %d of max_channels %d; campaign peaks %s; most leg "
              "starts in 1 s %d (max_cps %g); closest claims %.1f ms apart (1/max_cps %.1f ms), "
              "%d intervals of claims span %.1f ms at least; "
              "polls showing 'waiting for server' %s; reasons %s; monitor drops %d"
              % (server, mon.peak, limit["max_channels"], peaks, busiest, limit["max_cps"],
                 closest * 1000, 1000 / limit["max_cps"], per_second, shortest_second * 1000,
                 waited,
                 {n: dict(watch.reasons[n]) for n in names}, mon.drops))
        for name in names:
            assert peaks[name] <= layout[name][1], (name, peaks[name])
        assert busiest <= limit["max_cps"] + 2
        assert closest >= 1 / limit["max_cps"] - STAMP_ROUNDING_S
        assert shortest_second >= per_second / limit["max_cps"] - STAMP_ROUNDING_S
        assert mon.peak == limit["max_channels"] or sum(waited.values()) > 0  # it did bind

        # Fair share: while both campaigns of the server had numbers never tried (all due
        # from the start; a claim takes them before any retry, due later), each started calls
        # all along (no 10 s without a leg start: a node's death leaves each campaign the
        # other nodes) and had a fair part of the server's starts (1/2 by the gate's share and
        # its max_cps turns; at least 0.4 allows for different call lengths).
        ids = {name: Campaign.get(Campaign.name == name).id for name in names}
        first_claims = {name: [_epoch(a.created_at) for a in attempts
                               if a.campaign_id == ids[name] and a.seq == 1] for name in names}
        legs = {name: sorted(at for at, number, step in mon.legs
                             if step > 0 and number in _digits(plans[name])) for name in names}
        since = max(legs[name][0] for name in names)
        until = min(max(first_claims[name]) for name in names)
        assert until - since > 20, (since, until)  # a long enough stretch to judge
        gaps, shares = {}, {}
        inside = {name: [t for t in legs[name] if since <= t <= until] for name in names}
        for name in names:
            points = [since] + inside[name] + [until]
            gaps[name] = max(b - a for a, b in zip(points, points[1:]))
            shares[name] = len(inside[name]) / sum(len(v) for v in inside.values())
        print("FIGURES fair share on %s over %.0f s with both backlogged: longest gap between "
              "a campaign's starts %s s, share of starts %s" % (
                  server, until - since, {n: round(g, 2) for n, g in gaps.items()},
                  {n: round(s, 2) for n, s in shares.items()}))
        for name in names:
            assert gaps[name] < 10.0 and shares[name] >= 0.4, (name, gaps, shares)

    for _, _, took, _ in takeovers:
        assert took <= TAKEOVER_BOUND_S
    assert len({a.node for a in attempts}) == 4  # three nodes and the first one restarted
    print("FIGURES elapsed %.0f s" % (time.monotonic() - began))


def _via(url, port):
    """`url` (PostgreSQL) with its port replaced by `port` (a proxy's)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc="%s@127.0.0.1:%d" % (
        parts.username, port)))


def test_nodes_node_cut_from_the_database_stops_dialing_and_does_not_double_dial(
        asterisk, private_postgres, tmp_path):
    """Node X reaches PostgreSQL through a proxy; cut off for ~12 s (connections dropped, new
    ones refused), it must claim, so dial, nothing; node Y goes on; X dials again once back."""
    began = time.monotonic()
    postgres_url = private_postgres.url
    name, max_channels, cut_s = "cut", 10, 12.0
    # A claim committed just before the cut may still be stamped up to this much before it
    # (the stamp is taken under the gate's locks, before COMMIT), and its originate sent after.
    grace_s = 0.5
    # X's last leg starts within this of the cut: a claim committed before it, then the
    # originate and Asterisk's dialplan (a few ms on an idle machine; a loaded one can hold
    # the node's thread for a few hundred ms, and more beside a benchmark).
    stop_bound_s = 3.0
    plan = plan_numbers(400, 53000, seed=53, mix=MIX, longest_hold_s=2)
    camps = {name: campaign(max_channels=max_channels, max_attempts=MAX_ATTEMPTS,
                            delay_ms=0, retry_delay_s=1)}
    proxy = TcpProxy(private_postgres.port)
    servers = {"main": asterisk}
    y = Node(tmp_path / "y", servers, camps, postgres_url)
    x = Node(tmp_path / "x", servers, camps, _via(postgres_url, proxy.port))
    _prepare(y.config_path, {name: plan})
    try:
        with harness.ChannelMonitor(asterisk) as mon:
            try:
                # X first, so that it is dialing before the cut. Two nodes on one campaign do
                # not share its channels evenly: either may lose nearly every race for a free
                # one for a while, so waiting for the second node's claims could leave nothing
                # to do after the cut (seen beside a benchmark: 457 of 608 attempts made before
                # it, Y finished the campaign during the cut, X had nothing left to dial).
                x.start()
                wait_for(lambda: Attempt.select().where(Attempt.node == x.id).count() >= 10,
                         60, step=0.05)
                y.start()
                # early enough that work is left when X is back: Y alone made at most 201
                # attempts in the 12 s in 11 runs beside a benchmark; the plan makes ~600
                wait_for(lambda: _settled() >= 0.10 * len(plan), 120, step=0.1)
                left = Number.select().where(Number.status.not_in(SETTLED)).count()
                assert left >= 0.4 * len(plan), (
                    "the cut would come too late to see X dial after it: %d of %d numbers left"
                    % (left, len(plan)))
                cut_at = time.time()
                proxy.refuse = True
                proxy.cut()
                time.sleep(cut_s)
                back_at = time.time()
                proxy.refuse = False
                wait_for(lambda: state(name) == "completed", 240, step=0.5)
            finally:
                x.service.stop()
                y.service.stop()
        _explain_overlaps(mon)
        figures = check_invariants(name, plan, mon, MAX_ATTEMPTS, max_channels)
    finally:
        proxy.close()
    node_of = {a.id: a.node for a in Attempt.select(Attempt.id, Attempt.node)}
    claims = collections.defaultdict(collections.Counter)  # node -> {period: attempts}
    for a in Attempt.select(Attempt.node, Attempt.created_at):
        at = _epoch(a.created_at)
        period = ("before" if at <= cut_at else "cut" if at < back_at else "after")
        claims[a.node][period] += 1
    late = [a.id for a in Attempt.select().where(Attempt.node == x.id)
            if cut_at + grace_s < _epoch(a.created_at) < back_at]
    legs = collections.defaultdict(list)  # node -> its legs' start times (Asterisk)
    for at, _, attempt_id in mon.originated:
        legs[node_of.get(attempt_id)].append(at)
    x_last = max(t for t in legs[x.id] if t < back_at)
    x_after = [t for t in legs[x.id] if t >= back_at]
    y_during = [t for t in legs[y.id] if cut_at <= t < back_at]
    print("FIGURES cut of node X (%s) for %.0f s: its last leg started %.2f s after the cut; "
          "attempts claimed before/during/after the cut: X %s, Y (%s) %s; legs started during "
          "the cut by Y %d; X's legs after it came back %d (first %.1f s after); numbers left at "
          "the cut %d; seconds %.0f; %s" % (
              x.id, cut_s, x_last - cut_at, dict(claims[x.id]), y.id, dict(claims[y.id]),
              len(y_during), len(x_after), (min(x_after) - back_at) if x_after else -1,
              left, time.monotonic() - began, figures))
    assert late == []
    assert x_last - cut_at <= stop_bound_s
    assert len(y_during) >= 5 and claims[y.id]["cut"] >= 5
    assert len(x_after) >= 1 and claims[x.id]["after"] >= 1, x.service.log_tail(60)
    assert set(node_of.values()) == {x.id, y.id}
