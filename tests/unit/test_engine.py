import datetime as dt

from agi_campaign import campaigns
from agi_campaign.clock import FakeClock, to_db
from agi_campaign.config import parse_config
from agi_campaign.engine import Engine
from agi_campaign.models import Attempt, Campaign, DncEntry, Number
from agi_campaign.results import Recorder, RetryPolicy

from tests.unit.factories import T0, make_numbers
from tests.unit.fakes import FakeAmi


def config(**campaign):
    camp = {"caller_id": "12025550100", "type": "on_demand", "max_channels": 3,
            "max_attempts": 2, "retry_delay_s": 60, "delay_ms": 0, "dnc_lists": ["global"],
            "on_connect": {"type": "message", "sounds": ["hello-world"]}}
    camp.update(campaign)
    return parse_config({
        "servers": {"main": {"ami": {"username": "u", "secret": "s"},
                             "dial_template": "Local/{number}@callees"}},
        "dnc_lists": {"global": {}},
        "service": {"tick_ms": 1000},
        "campaigns": {"c1": camp}}, "test.yaml")


def setup(cfg, count=10):
    clock = FakeClock(T0)
    campaigns.sync_campaigns(cfg, clock.now())
    row = Campaign.get(Campaign.name == "c1")
    make_numbers(row, count)
    ami = FakeAmi()
    policy = lambda name: RetryPolicy(cfg.campaigns[name].max_attempts,  # noqa: E731
                                      cfg.campaigns[name].retry_delay_s)
    rec = Recorder(policy)
    return Engine(cfg, clock, {"main": ami}, rec), ami, clock, row, rec


def running(engine, row):
    campaigns.apply_command("c1", "start", engine.clock.now())
    engine.tick_states()
    assert Campaign.get_by_id(row.id).state == "running"


def test_engine_never_exceeds_max_channels(db):
    engine, ami, clock, row, rec = setup(config())
    engine.dial("c1")
    assert ami.originates() == []  # READY: nothing dialed before start
    running(engine, row)
    engine.dial("c1")
    engine.dial("c1")
    assert len(ami.originates()) == 3
    first = Attempt.select().order_by(Attempt.id).first()
    rec.record_result(first.id, first.token, "ANSWER", "16", "3", "5", clock.now())
    engine.dial("c1")
    assert len(ami.originates()) == 4


def test_engine_delay_spaces_call_starts(db):
    engine, ami, clock, row, rec = setup(config(delay_ms=400, max_channels=10))
    running(engine, row)
    engine.dial("c1")
    created = [a.created_at for a in Attempt.select().order_by(Attempt.id)]
    assert len(created) == 3  # t=0, 0.4, 0.8 within a 1 s tick
    gaps = [(b - a).total_seconds() for a, b in zip(created, created[1:])]
    assert all(g >= 0.4 for g in gaps)


def test_engine_paused_campaign_places_no_call(db):
    engine, ami, clock, row, rec = setup(config())
    running(engine, row)
    campaigns.apply_command("c1", "pause", clock.now())
    engine.dial("c1")
    assert ami.originates() == []


def test_engine_dnc_added_while_running_is_not_dialed(db):
    engine, ami, clock, row, rec = setup(config(max_channels=20), count=5)
    blocked = Number.select().order_by(Number.id).first().phone
    DncEntry.create(list_name="global", phone=blocked, added_at=to_db(T0))
    running(engine, row)
    engine.dial("c1")
    dialed = [v for a in ami.originates() for v in a["Variable"] if v.startswith("ACAMP_DIAL=")]
    assert len(dialed) == 4
    assert all(blocked[1:] not in v for v in dialed)
    assert Number.get(Number.phone == blocked).status == "dnc"


def test_engine_refused_originate_does_not_count_and_rests_the_server(db):
    engine, ami, clock, row, rec = setup(config(max_channels=1, max_attempts=1), count=1)
    ami.refuse = True
    running(engine, row)
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
    engine, ami, clock, row, rec = setup(config(max_channels=1), count=1)
    running(engine, row)
    engine.dial("c1")
    action_id = ami.originates()[0]["ActionID"]
    engine.on_ami_event("main", {"Event": "OriginateResponse", "Response": "Failure",
                                 "ActionID": action_id, "Reason": "0"})
    engine.reap_failed_originates()
    assert Attempt.get().status == "dialing"
    clock.advance(11)
    engine.reap_failed_originates()
    assert Attempt.get().outcome == "failed"


def test_engine_reconcile_marks_vanished_calls_lost_but_keeps_live_ones(db):
    engine, ami, clock, row, rec = setup(config(max_channels=2), count=2)
    running(engine, row)
    engine.dial("c1")
    live, gone = list(Attempt.select().order_by(Attempt.id))
    ami.channels = [{"Uniqueid": "acamp-%d-%s" % (live.id, live.token), "Linkedid": "x"}]
    engine.reconcile()  # too young
    clock.advance(16)
    engine.reconcile()  # first absence seen
    assert Attempt.get_by_id(gone.id).status == "dialing"
    clock.advance(6)
    engine.reconcile()
    assert Attempt.get_by_id(gone.id).outcome == "lost"
    assert Attempt.get_by_id(live.id).status == "dialing"


def test_engine_completes_when_every_number_is_final(db):
    engine, ami, clock, row, rec = setup(config(max_channels=5, max_attempts=1), count=2)
    running(engine, row)
    engine.dial("c1")
    for att in Attempt.select():
        rec.record_result(att.id, att.token, "BUSY", "17", "", "", clock.now())
    engine.tick_states()
    assert Campaign.get_by_id(row.id).state == "completed"
    assert {n.status for n in Number.select()} == {"failed"}


def test_engine_scheduled_campaign_dials_only_inside_its_window(db):
    cfg = config(type="scheduled", start="2026-11-01T00:00", end="2027-01-01T00:00",
                 week_time="mon-fri 09:00-17:00", timezone="UTC")
    engine, ami, clock, row, rec = setup(cfg)
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
    engine, ami, clock, row, rec = setup(config(max_channels=1), count=1)
    running(engine, row)
    engine.dial("c1")
    ami.connected = False
    clock.advance(engine.config.service.stuck_after_s - 1)
    engine.reconcile()
    assert Attempt.get().status == "dialing"
    clock.advance(2)
    engine.reconcile()
    assert Attempt.get().outcome == "lost"


def test_engine_waits_after_an_ami_reconnection_before_dialing(db):
    engine, ami, clock, row, rec = setup(config(max_channels=2), count=2)
    running(engine, row)
    engine.on_ami_state("main", True)
    engine.dial("c1")
    assert ami.originates() == []
    clock.advance(2.1)
    engine.dial("c1")
    assert len(ami.originates()) == 2
