"""Fault against the real Asterisk 22: PostgreSQL restarted mid-campaign.

The dialer runs in process on a private PostgreSQL server (tests/integration/pgserver.py, so
the machine's shared one is left alone), which is stopped (fast: every connection is cut),
kept down 3 s and started again while calls are in flight. The campaign must still complete
with nothing lost and nobody called twice at once (check_invariants, from Asterisk's own count
of callee legs).
"""
import collections
import logging
import time

import peewee
import pytest

from agi_campaign import campaigns
from agi_campaign.testing import harness
from agi_campaign.clock import SystemClock
from agi_campaign.db import database

from tests.integration.support import (campaign, check_invariants, load, plan_numbers, state,
                                       wait_for)

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres, pytest.mark.timeout(420)]


def _or_none(fn, *args):
    """`fn(*args)` in this (the test's) thread, or None while the database cannot answer."""
    try:
        return fn(*args)
    except (peewee.OperationalError, peewee.InterfaceError):
        if not database.is_closed():
            database.close()  # a lost connection is not returned to the pool
        return None


def test_fault_postgres_restarted_mid_campaign_completes_nothing_lost(
        dialer, asterisk, private_postgres, tmp_path, caplog):
    name, max_channels, max_attempts = "pgrestart", 5, 3
    plan = plan_numbers(40, 36000, seed=23)
    caplog.set_level(logging.INFO)
    began = time.monotonic()
    with harness.ChannelMonitor(asterisk) as mon:
        service, _ = dialer.start(
            {name: campaign(max_channels=max_channels, max_attempts=max_attempts,
                            retry_delay_s=1)},
            {"main": asterisk}, db_url=private_postgres.url)
        load(name, list(plan), tmp_path)
        campaigns.apply_command(name, "start", SystemClock().now())
        wait_for(lambda: mon.started >= 8 and len(mon.live) >= 2, 60, step=0.02)
        legs_before, live_at_stop = mon.started, len(mon.live)  # calls in flight at the stop
        down_s = private_postgres.restart(down_s=3.0)
        legs_during = mon.started - legs_before
        wait_for(lambda: _or_none(state, name) == "completed", 180, step=0.5)
        writer_outages = service.writer.outages
    figures = check_invariants(name, plan, mon, max_attempts, max_channels)
    errors = collections.Counter(
        "%s: %s" % (r.name, r.getMessage().splitlines()[0][:120])
        for r in caplog.records if r.levelno >= logging.ERROR)
    print("FIGURES postgres restart: calls_in_flight_at_stop=%d db_down_s=%.1f "
          "legs_started_while_down=%d writer_outages=%d errors_logged=%d seconds=%.0f"
          % (live_at_stop, down_s, legs_during, writer_outages, sum(errors.values()),
             time.monotonic() - began))
    for line, count in errors.most_common(10):
        print("  ERROR x%d %s" % (count, line))
    assert writer_outages >= 1  # the writer did lose its connection, and came back
    assert figures["numbers"] == 40
