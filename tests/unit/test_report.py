"""agi_campaign.report: every figure equals what the attempts table says, counted here another
way (Peewee queries and plain Python over the rows), on SQLite and PostgreSQL; the range, the
campaign's zone (a DST change inside the report) and the text/CSV/JSON forms."""
import collections
import csv
import datetime as dt
import io
import json
import zoneinfo

import pytest

from agi_campaign import campaigns, report
from agi_campaign.cli import main
from agi_campaign.clock import from_db, show_time, to_db
from agi_campaign.models import Attempt, Campaign, Number

from tests.unit.support import campaign_config, make_numbers

ZONE = "America/New_York"
# 2026-11-01 06:00 UTC is 01:00 EST, just after New York's clocks went back (02:00 EDT)
START = dt.datetime(2026, 11, 1, 4, 30, tzinfo=dt.timezone.utc)
OUTCOMES = ["answered", "busy", "answered", "noanswer", "refused", "answered", "machine",
            "congestion", None, "answered", "unavailable", "failed"]


@pytest.fixture
def calls(db):
    cfg = campaign_config(timezone=ZONE)
    campaigns.sync_campaigns(cfg, START)
    row = Campaign.get(Campaign.name == "c1")
    make_numbers(row, 5)
    numbers = list(Number.select().order_by(Number.id))
    for i, outcome in enumerate(OUTCOMES):
        created = START + dt.timedelta(minutes=17 * i)
        answered = created + dt.timedelta(seconds=3 + i) if outcome == "answered" else None
        Attempt.create(
            number=numbers[i % 4], campaign=row, seq=i, token="t%d" % i, server="main",
            status="ended" if outcome else "dialing", outcome=outcome,
            created_at=to_db(created), answered_at=to_db(answered),
            ended_at=to_db(created + dt.timedelta(seconds=30)) if outcome else None,
            billsec_s=10.0 + i if outcome == "answered" else None,
            opted_out=True if i in (2, 5) else None)
    return cfg, row


def expected(row, since=None, until=None, zone=ZONE):
    """The figures counted from the attempts table through the ORM, in plain Python (row by
    row, as campaign_report did before it counted in SQL)."""
    rows = [a for a in Attempt.select().where(Attempt.campaign == row.id)
            if (since is None or from_db(a.created_at) >= since)
            and (until is None or from_db(a.created_at) < until)]
    placed = [a for a in rows if a.outcome != "refused"]
    ended = [a for a in placed if a.status == "ended"]
    answered = [a for a in ended if a.outcome == "answered"]
    tz = zoneinfo.ZoneInfo(zone)
    hours = collections.Counter(
        show_time(from_db(a.created_at).astimezone(tz).replace(minute=0, second=0,
                                                              microsecond=0), tz)
        for a in placed)
    per_number = collections.Counter(collections.Counter(a.number_id for a in placed).values())
    return {
        "placed": len(placed), "in_flight": len(placed) - len(ended),
        "refused": len(rows) - len(placed),
        "by_outcome": {o: n for o, n in collections.Counter(a.outcome for a in ended).items()},
        "answer_rate": round(len(answered) / len(ended), 4) if ended else None,
        "ring": _mean([(from_db(a.answered_at) - from_db(a.created_at)).total_seconds()
                       for a in answered if a.answered_at is not None]),
        "talk": _mean([a.billsec_s for a in answered if a.billsec_s is not None]),
        "hours": sorted(hours.items(), key=lambda kv: kv[0]),
        "per_number": dict(sorted(per_number.items())),
        "opt_outs": sum(1 for a in rows if a.opted_out),
    }


def _mean(values):
    return round(sum(values) / len(values), 3) if values else None


def check(got, want):
    a = got["attempts"]
    assert (a["placed"], a["in_flight"], a["refused"]) == (
        want["placed"], want["in_flight"], want["refused"])
    assert {o: n for o, n in a["by_outcome"].items() if n} == want["by_outcome"]
    assert got["answer_rate"] == want["answer_rate"]
    assert (got["mean_ring_s"], got["mean_talk_s"]) == (want["ring"], want["talk"])
    assert sorted(map(tuple, got["calls_per_hour"])) == want["hours"]
    assert dict(map(tuple, got["attempts_per_number"])) == want["per_number"]
    assert got["opt_outs"] == want["opt_outs"]


def test_report_figures_equal_the_attempts_table(calls):
    cfg, row = calls
    got = report.campaign_report(row.id, ZONE)
    want = expected(row)
    check(got, want)
    assert want["placed"] == 11 and want["refused"] == 1 and want["in_flight"] == 1
    assert want["by_outcome"]["answered"] == 4 and want["opt_outs"] == 2
    assert got["numbers"]["total"] == 5
    # the hours follow New York's clock through the change back from EDT to EST
    labels = [hour for hour, _ in got["calls_per_hour"]]
    assert "2026-11-01 01:00:00 -04:00" in labels and "2026-11-01 01:00:00 -05:00" in labels


def test_report_range_selects_calls_placed_in_it(calls):
    cfg, row = calls
    since, until = START + dt.timedelta(minutes=30), START + dt.timedelta(minutes=120)
    got = report.campaign_report(row.id, ZONE, since, until)
    want = expected(row, since, until)
    check(got, want)
    assert 0 < want["placed"] < 11
    assert got["since"] == "2026-11-01T01:00:00-04:00"
    assert got["until"] == "2026-11-01T01:30:00-05:00"


def test_report_command_prints_text_json_and_csv(calls, db_url, tmp_path, capsys,
                                                 monkeypatch):
    cfg, row = calls
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({
        "database": {"url": db_url},
        "servers": {"main": {"ami": {"username": "u", "secret_env": "NOPE"},
                             "dial_template": "Local/{number}@callees"}},
        "campaigns": {"c1": {"caller_id": "12025550100", "type": "on_demand",
                             "timezone": ZONE, "on_connect": {"type": "message",
                                                              "sounds": ["hello-world"]}}}}))
    assert main(["report", "c1", "--config", str(path), "--json"]) == 0
    check(json.loads(capsys.readouterr().out), expected(row))
    assert main(["report", "c1", "--config", str(path), "--csv"]) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert table[0] == ["section", "key", "value"]
    assert ["outcome", "answered", "4"] in table and ["attempts", "refused", "1"] in table
    assert main(["report", "c1", "--config", str(path), "--since", "2026-11-01T01:00"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("c1: calls placed from 2026-11-01 01:00:00 -04:00 to now")
    assert "answer rate " in text and "calls per hour:" in text
    assert main(["report", "c1", "--config", str(path), "--since", "yesterday"]) == 2
    assert "--since 'yesterday' is not an ISO 8601 time" in capsys.readouterr().err
    assert main(["report", "c1", "--config", str(path), "--since", "2026-11-02",
                 "--until", "2026-11-01"]) == 2
    assert "is not after --since" in capsys.readouterr().err
    assert main(["report", "nope", "--config", str(path)]) == 2
    assert "'nope'" in capsys.readouterr().err


# the changes of summer time: Lord Howe goes +10:30 -> +11:00 at 2026-10-03 15:30 UTC,
# New York +(-4) -> -5 at 2026-11-01 06:00 UTC; Kathmandu stays +05:45, Adelaide +10:30/+09:30
MIXED_ZONES = ["Australia/Lord_Howe", "America/New_York", "Asia/Kathmandu", "Asia/Kolkata",
               "Australia/Adelaide", "UTC"]
MIXED_STARTS = [dt.datetime(2026, 10, 3, 13, 2, 7, 250001, tzinfo=dt.timezone.utc),
                dt.datetime(2026, 11, 1, 3, 59, 59, 999999, tzinfo=dt.timezone.utc)]


@pytest.mark.parametrize("zone", MIXED_ZONES)
def test_report_sql_figures_equal_a_row_by_row_count_across_zones_and_changes(db, zone):
    """Regression for the report's SQL rewrite: 15-minute UTC buckets folded into local hours
    give the hours a row-by-row count gives, in zones with :30/:45 offsets and through changes
    of summer time; ring and talk means from times with microseconds (and without)."""
    campaigns.sync_campaigns(campaign_config(timezone=zone), MIXED_STARTS[0])
    row = Campaign.get(Campaign.name == "c1")
    make_numbers(row, 7)
    numbers = list(Number.select().order_by(Number.id))
    outcomes = ["answered", "noanswer", "answered", "refused", "busy", "answered", None,
                "machine"]
    i = 0
    for start in MIXED_STARTS:
        for k in range(60):   # every 4 min 59.75 s for 5 hours: bucket edges on both sides
            created = start + dt.timedelta(seconds=299.75 * k)
            outcome = outcomes[i % len(outcomes)]
            answered = (created + dt.timedelta(seconds=2 + (i % 9), microseconds=(i * 7919)
                                               % 1000000)
                        if outcome == "answered" and i % 5 else None)
            Attempt.create(
                number=numbers[(i * 3) % 7], campaign=row, seq=i, token="m%d" % i,
                server="main", status="ended" if outcome else "answered", outcome=outcome,
                created_at=to_db(created), answered_at=to_db(answered),
                billsec_s=(i % 13) + 0.25 if outcome == "answered" and i % 4 else None,
                opted_out=True if i % 11 == 0 else None)
            i += 1
    check(report.campaign_report(row.id, zone), expected(row, zone=zone))
    since, until = MIXED_STARTS[0] + dt.timedelta(minutes=95), MIXED_STARTS[1]
    check(report.campaign_report(row.id, zone, since, until),
          expected(row, since, until, zone=zone))
