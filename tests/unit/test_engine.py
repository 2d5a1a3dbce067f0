import datetime as dt

from agi_campaign import campaigns
from agi_campaign.clock import to_db
from agi_campaign.config import parse_config
from agi_campaign.engine import Engine
from agi_campaign.models import Attempt, Campaign, DncEntry, Number
from agi_campaign.lifecycle import RetryPolicy
from agi_campaign.results import Recorder

from tests.unit.support import (CAMPAIGN, SERVER, T0, FakeAmi, FakeClock, engine_dialing,
                                engine_for, make_numbers, start_running)


def assert_dialing_until(step, clock, seconds, outcome):
    """`step()` leaves the attempt dialing; `seconds` later, `step()` ends it with `outcome`."""
    step()
    assert Attempt.get().status == "dialing"
    clock.advance(seconds)
    step()
    assert Attempt.get().outcome == outcome


def test_engine_never_exceeds_max_channels(db):
    engine, ami, clock, row, rec = engine_for()
    engine.dial("c1")
    assert ami.originates() == []  # READY: nothing dialed before start
    start_running(engine, row)
    engine.dial("c1")
    engine.dial("c1")
    assert len(ami.originates()) == 3
    first = Attempt.select().order_by(Attempt.id).first()
    rec.record_result(first.id, first.token, "ANSWER", "16", "3", "5", clock.now())
    engine.dial("c1")
    assert len(ami.originates()) == 4


def test_engine_delay_spaces_call_starts(db):
    engine, ami, clock, row, rec = engine_dialing(delay_ms=400, max_channels=10)
    created = [a.created_at for a in Attempt.select().order_by(Attempt.id)]
    assert len(created) == 3  # t=0, 0.4, 0.8 within a 1 s tick
    gaps = [(b - a).total_seconds() for a, b in zip(created, created[1:])]
    assert all(g >= 0.4 for g in gaps)


def test_engine_sends_a_claims_originates_in_one_batch(db):
    engine, ami, clock, row, rec = engine_for(max_channels=20, count=7)
    start_running(engine, row)
    engine.dial("c1")
    assert ami.batches == [7] and len(ami.originates()) == 7
    assert len({a["ActionID"] for a in ami.originates()}) == 7


def test_engine_paused_campaign_places_no_call(db):
    engine, ami, clock, row, rec = engine_for()
    start_running(engine, row)
    campaigns.apply_command("c1", "pause", clock.now())
    engine.dial("c1")
    assert ami.originates() == []


def test_engine_dnc_added_while_running_is_not_dialed(db):
    engine, ami, clock, row, rec = engine_for(max_channels=20, count=5)
    blocked = Number.select().order_by(Number.id).first().phone
    DncEntry.create(list_name="global", phone=blocked, added_at=to_db(T0))
    start_running(engine, row)
    engine.dial("c1")
    dialed = [v for a in ami.originates() for v in a["Variable"] if v.startswith("ACAMP_DIAL=")]
    assert len(dialed) == 4
    assert all(blocked[1:] not in v for v in dialed)
    assert Number.get(Number.phone == blocked).status == "dnc"


def test_engine_refused_originate_does_not_count_and_rests_the_server(db):
    engine, ami, clock, row, rec = engine_for(max_channels=1, max_attempts=1, count=1)
    ami.refuse = True
    start_running(engine, row)
    engine.dial("c1")
    engine.reap_failed_originates()
    att = Attempt.get()
    assert (att.status, att.outcome) == ("ended", "refused")
    assert "Extension does not exist" in att.note
    number = Number.get()
    assert (number.status, number.attempts) == ("pending", 0)  # nobody was called
    ami.refuse = False
    clock.advance(4)
    engine.dial("c1")
    assert len(ami.originates()) == 1  # the server rests after a refusal
    clock.advance(10)
    engine.dial("c1")
    assert len(ami.originates()) == 2
    assert Number.get().attempts == 1


def test_engine_failed_originate_event_waits_for_the_dialplan_result(db):
    engine, ami, clock, row, rec = engine_dialing(max_channels=1, count=1)
    action_id = ami.originates()[0]["ActionID"]
    engine.on_ami_event("main", {"Event": "OriginateResponse", "Response": "Failure",
                                 "ActionID": action_id, "Reason": "0"})
    assert_dialing_until(engine.reap_failed_originates, clock, 11, "failed")


def test_engine_reconcile_marks_vanished_calls_lost_but_keeps_live_ones(db):
    engine, ami, clock, row, rec = engine_dialing(max_channels=2, count=2)
    live, gone = list(Attempt.select().order_by(Attempt.id))
    ami.channels = [{"Uniqueid": engine_channel(engine, live), "Linkedid": "x"}]
    engine.reconcile()  # too young
    clock.advance(16)
    engine.reconcile()  # first absence seen
    assert Attempt.get_by_id(gone.id).status == "dialing"
    clock.advance(6)
    engine.reconcile()
    assert Attempt.get_by_id(gone.id).outcome == "lost"
    assert Attempt.get_by_id(live.id).status == "dialing"


def test_engine_completes_when_every_number_is_final(db):
    engine, ami, clock, row, rec = engine_dialing(max_channels=5, max_attempts=1, count=2)
    for att in Attempt.select():
        rec.record_result(att.id, att.token, "BUSY", "17", "", "", clock.now())
    engine.tick_states()
    assert Campaign.get_by_id(row.id).state == "completed"
    assert {n.status for n in Number.select()} == {"failed"}


def test_engine_scheduled_campaign_dials_only_inside_its_window(db):
    engine, ami, clock, row, rec = engine_for(
        type="scheduled", start="2026-11-01T00:00", end="2027-01-01T00:00",
        week_time="mon-fri 09:00-17:00", timezone="UTC")
    clock.set(dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc))  # a Saturday
    engine.tick_states()
    engine.dial("c1")
    assert Campaign.get_by_id(row.id).state == "ready" and ami.originates() == []
    clock.set(dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.timezone.utc))  # Monday 09:00
    engine.tick_states()
    engine.dial("c1")
    assert Campaign.get_by_id(row.id).state == "running" and len(ami.originates()) == 3
    clock.set(dt.datetime(2026, 12, 7, 17, 0, tzinfo=dt.timezone.utc))
    engine.tick_states()
    assert Campaign.get_by_id(row.id).state == "ready"


def test_engine_unreachable_server_attempts_are_reaped_after_stuck_after_s(db):
    engine, ami, clock, row, rec = engine_dialing(max_channels=1, count=1)
    ami.connected = False
    engine.on_ami_state("main", False)  # unreachable from now: stuck_after_s counts from here
    clock.advance(engine.config.service.stuck_after_s - 1)
    assert_dialing_until(engine.reconcile, clock, 2, "lost")


def test_engine_waits_after_an_ami_reconnection_before_dialing(db):
    engine, ami, clock, row, rec = engine_for(max_channels=2, count=2)
    start_running(engine, row)
    engine.on_ami_state("main", True)
    engine.dial("c1")
    assert ami.originates() == []
    clock.advance(2.1)
    engine.dial("c1")
    assert len(ami.originates()) == 2


# ---- issue 8: promises on ordinary deployments -------------------------------------------------

def two_server_config():
    """Campaign "ca" on server "a", "cb" on "b", one channel each."""
    camp = dict(CAMPAIGN, max_channels=1, dnc_lists=[])
    return parse_config({
        "servers": {"a": SERVER, "b": SERVER},
        "service": {"tick_ms": 1000},
        "campaigns": {"ca": dict(camp, server="a"), "cb": dict(camp, server="b")}},
        "test.yaml")


def test_engine_reconcile_with_two_servers_finishes_vanished_calls_on_both(db):
    cfg = two_server_config()
    clock = FakeClock(T0)
    campaigns.sync_campaigns(cfg, clock.now())
    amis = {"a": FakeAmi(), "b": FakeAmi()}
    for ami in amis.values():
        ami.channels = []
    rec = Recorder(lambda name: RetryPolicy(2, 60))
    engine = Engine(cfg, clock, amis, rec, instance="t1", spacing_clock=clock.now)
    for name in ("ca", "cb"):
        make_numbers(Campaign.get(Campaign.name == name), 1, start=len(name) * 10 + ord(name[1]))
        campaigns.apply_command(name, "start", clock.now())
    engine.tick_states()
    engine.dial("ca")
    engine.dial("cb")
    assert Attempt.select().count() == 2
    for _ in range(20):  # 20 passes over 2 minutes, no live channel anywhere
        clock.advance(6)
        engine.reconcile()
    assert {(a.server, a.outcome) for a in Attempt.select()} == {("a", "lost"), ("b", "lost")}


def test_engine_ami_blip_does_not_end_a_long_answered_call(db):
    engine, ami, clock, row, rec = engine_dialing(max_channels=1, count=1)
    att = Attempt.get()
    rec.record_answer(att.id, att.token, clock.now())
    live = engine_channel(engine, att)
    ami.channels = [{"Uniqueid": live, "Linkedid": live}]
    clock.advance(engine.config.service.stuck_after_s + 60)  # a long queue call, still up
    engine.reconcile()
    assert Attempt.get().status == "answered"
    ami.connected = False  # AMI blips for one reconcile pass
    engine.on_ami_state("main", False)
    engine.reconcile()
    assert Attempt.get().status == "answered"  # not lost: unreachable only just now
    ami.connected = True
    engine.on_ami_state("main", True)
    clock.advance(10)
    engine.reconcile()
    engine.dial("c1")
    assert Attempt.get().status == "answered" and len(ami.originates()) == 1


def test_engine_server_unreachable_at_start_is_not_reaped_before_stuck_after_s(db):
    engine, ami, clock, row, rec = engine_dialing(max_channels=1, count=1)
    clock.advance(engine.config.service.stuck_after_s * 2)  # the service was down for long
    ami.connected = False  # ... and this server is not back yet at start-up
    assert_dialing_until(engine.reconcile, clock, engine.config.service.stuck_after_s + 1,
                         "lost")


def engine_channel(engine, att):
    from agi_campaign.originate import channel_id
    return channel_id(engine.instance, att.id, att.token)


def test_engine_ignores_another_deployments_originate_failure_with_our_attempt_id(db):
    engine, ami, clock, row, rec = engine_dialing(max_channels=1, count=1)
    att = Attempt.get()
    # Another dialer on the same Asterisk (its own database: ids from 1) fails a call.
    for other in ("acamp-%d-%s" % (att.id, "0" * 16), "acamp-zz9-%d-%s" % (att.id, "0" * 16),
                  "acamp-%s-%d-%s" % (engine.instance, att.id, "0" * 16)):
        engine.on_ami_event("main", {"Event": "OriginateResponse", "Response": "Failure",
                                     "ActionID": other, "Reason": "0"})
    clock.advance(30)
    engine.reap_failed_originates()
    assert Attempt.get().status == "dialing"
    # ... and its live channel with our id does not keep our vanished call alive.
    ami.channels = [{"Uniqueid": "acamp-zz9-%d-%s" % (att.id, att.token), "Linkedid": "x"}]
    assert_dialing_until(engine.reconcile, clock, 6, "lost")


def test_engine_originates_carry_the_instance_in_ids_and_astdb_key(db):
    engine, ami, clock, row, rec = engine_dialing(max_channels=1, count=1)
    action, att = ami.originates()[0], Attempt.get()
    assert action["ChannelId"] == "acamp-%s-%d-%s" % (engine.instance, att.id, att.token)
    assert "ACAMP_KEY=%s-%d" % (engine.instance, att.id) in action["Variable"]


def test_engine_does_not_complete_when_a_retry_lands_between_its_reads(db, monkeypatch):
    """A retryable result committed while tick_states reads the counts."""
    from agi_campaign.db import database
    engine, ami, clock, row, rec = engine_dialing(max_channels=1, max_attempts=3, count=1)
    att = Attempt.get()
    real = type(database.obj).execute_sql
    injected = []

    def execute_sql(self, sql, params=None, *args, **kwargs):
        cursor = real(self, sql, params, *args, **kwargs)
        if (not injected and sql.lstrip().upper().startswith("SELECT")
                and "number" in sql.lower() and "pending" in str(params or "") + sql):
            injected.append(sql)  # the result arrives right after this read
            rec.record_result(att.id, att.token, "BUSY", "17", "", "", clock.now())
        return cursor

    monkeypatch.setattr(type(database.obj), "execute_sql", execute_sql)
    engine.tick_states()
    monkeypatch.undo()
    assert injected
    assert Number.get().status == "pending"
    assert Campaign.get_by_id(row.id).state == "running"


def test_engine_originate_never_sent_is_refused_not_charged(db):
    from agi_campaign.ami import AmiClient

    class Dropped(AmiClient):
        """AMI went down between the engine's check and the send: nothing is written."""
        connected = True

    engine, ami, clock, row, rec = engine_for(max_channels=1, max_attempts=1, count=1)
    engine.amis["main"] = Dropped("main", "127.0.0.1", 1, "u", "s")
    start_running(engine, row)
    engine.dial("c1")
    engine.reap_failed_originates()
    att = Attempt.get()
    assert (att.status, att.outcome) == ("ended", "refused")
    assert (Number.get().status, Number.get().attempts) == ("pending", 0)


def test_engine_stamps_attempts_when_the_spacing_allows_them(db, monkeypatch):
    """A slow in-flight count at the start of a tick must not make the recorded call starts
    closer than delay_ms (the stamp is taken when the spacing allows the call)."""
    from agi_campaign import engine as engine_mod
    engine, ami, clock, row, rec = engine_for(delay_ms=400, max_channels=10)
    start_running(engine, row)
    engine.dial("c1")  # starts at t=0, 0.4, 0.8 within the 1 s tick
    real, slow = engine_mod.in_flight_count, []

    def count(campaign_id):
        if slow:
            clock.advance(0.15)  # this count query takes 150 ms on a busy machine
        return real(campaign_id)

    monkeypatch.setattr(engine_mod, "in_flight_count", count)
    clock.advance(0.3)  # the next tick begins 0.3 s after the last start
    slow.append(True)
    engine.dial("c1")
    created = [a.created_at for a in Attempt.select().order_by(Attempt.id)]
    assert len(created) >= 4
    gaps = [(b - a).total_seconds() for a, b in zip(created, created[1:])]
    assert min(gaps) >= 0.4, gaps


def test_engine_reconcile_takes_over_a_gone_nodes_attempts_and_leaves_a_live_nodes(db):
    """Three nodes' attempts on one server: this node's (young: left for now), a live other
    node's (never touched), a gone node's (settled at the first pass once ORPHAN_MIN_AGE_S old: from its
    AstDB copy when there is one, else lost), and a gone node's call still up (kept)."""
    from agi_campaign.heartbeat import Heartbeat

    engine, ami, clock, row, rec = engine_for(count=5, max_channels=5)
    me, live, gone = (Heartbeat("t1", 100, host="h", pid=pid) for pid in (1, 2, 3))
    for beat in (me, live, gone):
        beat.start(clock.now())
    engine.node = me.row_id
    start_running(engine, row)
    engine.dial("c1")
    atts = list(Attempt.select().order_by(Attempt.id))
    assert len(atts) == 5 and {a.node for a in atts} == {me.row_id}
    owners = [me.row_id, live.row_id, gone.row_id, gone.row_id, gone.row_id]
    for att, node in zip(atts, owners):
        Attempt.update(node=node).where(Attempt.id == att.id).execute()
    saved, up = atts[2], atts[4]
    ami.astdb[("agi-campaign", "t1-%d" % saved.id)] = "%s^BUSY^17^0^3" % saved.token
    ami.channels = [{"Uniqueid": engine_channel(engine, up), "Linkedid": "x"}]
    clock.advance(11)              # `gone` stopped beating 11 s ago; its claims are 11 s old
    me.beat(clock.now(), clock.now())
    live.beat(clock.now(), clock.now())
    engine.reconcile()
    got = {a.id: (a.status, a.outcome) for a in Attempt.select()}
    assert got[atts[0].id] == ("dialing", None)      # ours, younger than 15 s
    assert got[atts[1].id] == ("dialing", None)      # a live node's: its own business
    assert got[saved.id] == ("ended", "busy")        # gone node's, from AstDB
    assert got[atts[3].id] == ("ended", "lost")      # gone node's, no call, no copy
    assert got[up.id] == ("dialing", None)           # gone node's call still up: kept
    # a claim the "gone" node made 1 s ago (taken for gone, its heartbeat job held up, while
    # it still dials): younger than ORPHAN_MIN_AGE_S, its channel may not be up yet: kept
    Attempt.update(node=gone.row_id, created_at=to_db(clock.now() - dt.timedelta(seconds=1))) \
        .where(Attempt.id == atts[1].id).execute()
    engine.reconcile()
    assert Attempt.get_by_id(atts[1].id).status == "dialing"


def test_engine_unreachable_server_reaps_only_what_this_node_settles(db):
    """This node cannot reach the server for stuck_after_s: its own attempts there become
    lost, a live node's (which may well reach it) are never touched."""
    from agi_campaign.heartbeat import Heartbeat

    engine, ami, clock, row, rec = engine_for(count=2, max_channels=2)
    me, other = Heartbeat("t1", 100, host="h", pid=1), Heartbeat("t1", 100, host="h", pid=2)
    me.start(clock.now())
    other.start(clock.now())
    engine.node = me.row_id
    start_running(engine, row)
    engine.dial("c1")
    mine, theirs = list(Attempt.select().order_by(Attempt.id))
    Attempt.update(node=other.row_id).where(Attempt.id == theirs.id).execute()
    ami.connected = False
    engine.reconcile()                              # first seen unreachable
    clock.advance(engine.config.service.stuck_after_s + 1)
    me.beat(clock.now(), clock.now())
    other.beat(clock.now(), clock.now())
    engine.reconcile()
    assert Attempt.get_by_id(mine.id).outcome == "lost"
    assert Attempt.get_by_id(theirs.id).status == "dialing"


def test_engine_a_claim_that_took_too_long_is_not_dialed(db, monkeypatch):
    """This node stalled inside its claim (another node may take it for gone and settle its
    attempts meanwhile): what it claimed is given back as refused, never originated."""
    from agi_campaign import engine as engine_mod

    engine, ami, clock, row, rec = engine_for(count=3, max_channels=3)
    start_running(engine, row)
    real = engine_mod.claim_gated

    def stalled(*args, **kwargs):
        result = real(*args, **kwargs)
        clock.advance(engine_mod.STALE_CLAIM_S + 1)
        return result

    monkeypatch.setattr(engine_mod, "claim_gated", stalled)
    engine.dial("c1")
    assert ami.originates() == []
    engine.reap_failed_originates()
    assert {a.outcome for a in Attempt.select()} == {"refused"}
    assert {(n.status, n.attempts) for n in Number.select()} == {("pending", 0)}


def test_engine_unreachable_server_reaps_a_gone_nodes_attempts_when_no_other_node_lives(db):
    """One node (SQLite runs one), restarted while its server stays unreachable: the calls of
    its previous run (a gone node) are reaped after stuck_after_s like its own; with another
    live node they would be left to it."""
    from agi_campaign.heartbeat import Heartbeat

    engine, ami, clock, row, rec = engine_for(count=1, max_channels=1)
    before, me = Heartbeat("t1", 100, host="h", pid=1), Heartbeat("t1", 100, host="h", pid=2)
    before.start(clock.now())
    engine.node = before.row_id
    start_running(engine, row)
    engine.dial("c1")
    clock.advance(10)
    me.start(clock.now())
    engine.node = me.row_id                         # the restarted service
    ami.connected = False
    engine.reconcile()
    clock.advance(engine.config.service.stuck_after_s + 1)
    me.beat(clock.now(), clock.now())
    engine.reconcile()
    assert Attempt.get().outcome == "lost"


def _recorded_answered_call(engine, rec, clock):
    """A dialed attempt as the direct path's `connect` leaves it: answered, its outcome
    committed (record_outcome), handed to the engine (answered_recorded)."""
    att = Attempt.select().order_by(Attempt.id).first()
    rec.record_answer(att.id, att.token, clock.now())
    rec.record_outcome(att.id, att.token, "ANSWER", "16", 4, "played")
    engine.answered_recorded(att.id, att.token, ("ANSWER", "16", 4))
    return att


def test_engine_direct_answered_call_ends_at_its_channels_hangup_event(db):
    engine, ami, clock, row, rec = engine_dialing(max_channels=1)
    att = _recorded_answered_call(engine, rec, clock)
    engine.dial("c1")
    assert len(ami.originates()) == 1  # recorded, but its channel is up: the slot is held
    assert Attempt.get_by_id(att.id).status == "answered"
    engine.on_ami_event("main", {"Event": "Hangup", "Uniqueid": ami.originates()[0]["ChannelId"]
                                 + ";2"})  # a Local callee's other half: not ours
    assert Attempt.get_by_id(att.id).status == "answered"
    engine.on_ami_event("main", {"Event": "Hangup", "Uniqueid": ami.originates()[0]["ChannelId"]})
    ended = Attempt.get_by_id(att.id)
    assert (ended.status, ended.outcome, ended.dial_status, ended.hangup_cause,
            ended.billsec_s, ended.dest_result) == ("ended", "answered", "ANSWER", 16, 4.0,
                                                     "played")
    engine.dial("c1")
    assert len(ami.originates()) == 2  # the slot is free once the channel is gone


def test_engine_direct_answered_call_without_hangup_event_ends_after_the_wait(db, caplog):
    engine, ami, clock, row, rec = engine_dialing(max_channels=1)
    att = _recorded_answered_call(engine, rec, clock)
    engine.reap_failed_originates()
    assert Attempt.get_by_id(att.id).status == "answered"
    clock.advance(3.1)
    engine.reap_failed_originates()
    ended = Attempt.get_by_id(att.id)
    assert (ended.outcome, ended.note) == ("answered", "no Hangup event")
    assert "no Hangup event from Asterisk" in caplog.text  # the eventfilter hint


def test_engine_direct_call_whose_hangup_event_is_missing_waits_for_reconcile(db):
    """Once Hangup events are known to come, a missing one (lost in an AMI reconnection, or a
    transferred channel still up) does not free the slot on a timer."""
    engine, ami, clock, row, rec = engine_dialing(max_channels=1, count=2)
    engine.on_ami_event("main", {"Event": "Hangup", "Uniqueid": "acamp-t1-999-ffffffff"})
    att = _recorded_answered_call(engine, rec, clock)
    ami.channels = [{"Uniqueid": ami.originates()[0]["ChannelId"], "Linkedid": "x"}]
    clock.advance(30)
    engine.reap_failed_originates()
    engine.reconcile()
    assert Attempt.get_by_id(att.id).status == "answered"  # its channel is still up
    ami.channels = []
    engine.reconcile()
    clock.advance(6)
    engine.reconcile()
    assert Attempt.get_by_id(att.id).note == "recorded by connect; ended at reconcile"


def test_engine_direct_recorded_call_on_an_unreachable_server_ends_from_its_record(db):
    """A recorded call is never `lost` (and so never called again): also when its server stays
    unreachable for stuck_after_s."""
    engine, ami, clock, row, rec = engine_dialing(max_channels=1)
    att = Attempt.select().order_by(Attempt.id).first()
    rec.record_answer(att.id, att.token, clock.now())
    rec.record_outcome(att.id, att.token, "ANSWER", "16", 2, "played")
    ami.connected = False
    engine.reconcile()
    clock.advance(engine.config.service.stuck_after_s + 1)
    engine.reconcile()
    ended = Attempt.get_by_id(att.id)
    assert (ended.outcome, ended.dial_status) == ("answered", "ANSWER")
    assert Number.get_by_id(ended.number_id).status == "done"


def test_engine_direct_recorded_call_ends_from_its_record_at_reconcile(db):
    """Killed between connect's record and the Hangup event: a new engine (nothing in memory)
    ends the attempt from its row once the channel is gone, not as lost."""
    dialing, ami, clock, row, rec = engine_dialing(max_channels=1)
    att = Attempt.select().order_by(Attempt.id).first()
    rec.record_answer(att.id, att.token, clock.now())
    rec.record_outcome(att.id, att.token, "ANSWER", "16", 2, "played")
    engine = Engine(dialing.config, clock, {"main": ami}, rec, instance="t1",
                    spacing_clock=clock.now)
    clock.advance(20)
    engine.reconcile()
    clock.advance(6)
    engine.reconcile()
    ended = Attempt.get_by_id(att.id)
    assert (ended.outcome, ended.dial_status, ended.billsec_s) == ("answered", "ANSWER", 2.0)
    assert ended.note == "recorded by connect; ended at reconcile"
