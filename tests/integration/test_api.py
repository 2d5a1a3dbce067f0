"""The HTTP API end to end: `agi-campaign run` as a child process on the Asterisk sandbox, driven
only through a real HTTP client (httpx): DNC changes, a CSV upload, start, completion, the
attempts listing with each filter and its cursor pages, and the CSV export compared row for row
with the attempt table. Asterisk's own events (ChannelMonitor) count the calls."""
import collections
import csv
import io

import httpx

from agi_campaign.clock import from_db
from agi_campaign.models import Attempt, Number, open_database
from agi_campaign.numbers import ATTEMPT_COLUMNS
from agi_campaign.testing import harness
from agi_campaign.testing.process import wait_port
from agi_campaign.testing.sandbox import free_port

from tests.integration.support import (campaign, destinations_recorded, expected_export,
                                       plan_numbers, prepared_service, wait_for)

TOKEN_ENV = "AGI_CAMPAIGN_TEST_API_TOKEN"
TOKEN = "api-test-token-0123456789abcdef"


def walk(client, url, **params):
    """Every attempt of a listing, following next_cursor; returns (attempts, pages)."""
    out, pages, cursor = [], 0, None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        reply = client.get(url, params=query)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert len(body["attempts"]) <= params.get("limit", 100)
        out += body["attempts"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return out, pages


def test_api_upload_start_complete_export_equals_database(asterisk, tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    port = free_port()
    plan = plan_numbers(24, 52000, seed=12)
    phones = list(plan)
    blocked = phones[0]
    config, service = prepared_service(
        tmp_path, {"main": asterisk},
        {"web": campaign(max_channels=6, max_attempts=2, retry_delay_s=1)}, {},
        http={"port": port, "token_env": TOKEN_ENV, "max_upload_bytes": 1 << 20})
    open_database(config.database.url)
    base = "http://127.0.0.1:%d/api/v1" % port
    client = httpx.Client(base_url=base, headers={"Authorization": "Bearer " + TOKEN},
                          timeout=60)
    with harness.ChannelMonitor(asterisk) as mon:
        try:
            service.start()
            wait_port(port, 30, service.proc)
            # DNC: add two (one of them in the upload), check, list, remove the other
            other = "+12025559876"
            added = client.post("/dnc/lists/blocked/add",
                                json={"numbers": [blocked[2:], other]})
            assert added.status_code == 200 and added.json()["added"] == 2, added.text
            check = client.get("/dnc/check", params={"number": blocked})
            assert check.json() == {"number": blocked, "lists": ["blocked"]}
            listed = client.get("/dnc/lists/blocked", params={"limit": 1})
            first = listed.json()
            rest = client.get("/dnc/lists/blocked",
                              params={"limit": 1, "cursor": first["next_cursor"]}).json()
            assert [e["phone"] for e in first["entries"] + rest["entries"]] == sorted(
                [blocked, other]) and rest["next_cursor"] is None
            removed = client.post("/dnc/lists/blocked/remove", json={"numbers": [other]})
            assert removed.json()["removed"] == [other]
            assert client.get("/dnc/check", params={"number": other}).json()["lists"] == []

            # upload: a CSV body, national and E.164 forms, one invalid row
            lines = ["phone,name"] + ["%s,guest%d" % (p[2:] if i % 2 else p, i)
                                      for i, p in enumerate(phones)] + ["not-a-number,x"]
            reply = client.post("/campaigns/web/numbers", content="\n".join(lines) + "\n",
                                headers={"Content-Type": "text/csv"})
            assert reply.status_code == 200, reply.text
            report = reply.json()
            print("FIGURES upload", {k: report[k] for k in (
                "rows", "imported", "dnc", "invalid", "exit_status")})
            assert (report["rows"], report["imported"], report["dnc"], report["invalid"]) == (
                25, 23, 1, 1)
            assert report["exit_status"] == 3 and report["rejected"][-1]["line"] == 26

            started = client.post("/campaigns/web/start")
            assert started.status_code == 200 and started.json()["state"] == "STARTNOW"

            def completed():
                body = client.get("/campaigns/web").json()
                return body["state"] == "COMPLETED"
            wait_for(completed, 150, step=1)
            wait_for(lambda: destinations_recorded("web"), 30)
            final = client.get("/campaigns").json()["campaigns"][0]
            assert final["name"] == "web" and final["numbers"]["pending"] == 0
            assert final["forecast"]["finishes_at"] is None  # nothing left: no estimate

            db_attempts = list(Attempt.select(Attempt, Number).join(Number)
                               .order_by(Attempt.id))
            placed = [a for a in db_attempts if a.outcome != "refused"]
            print("FIGURES calls", {"attempts": len(db_attempts), "legs_seen_by_asterisk":
                                    mon.started, "numbers_dialed": len(mon.dialed)})
            assert mon.started == len(placed)
            assert blocked[1:] not in mon.dialed
            assert sorted(mon.dialed) == sorted({a.number.phone[1:] for a in placed})
            check_listing_and_export(client, db_attempts)
            check_report(client, placed)
        finally:
            service.stop(graceful=True)
            client.close()


def check_listing_and_export(client, db_attempts):
    """Every filter of the listing and its cursor pages; the export against the table."""
    # listing: every page walked gives the table in id order, once each
    everything, pages = walk(client, "/campaigns/web/attempts", limit=7)
    assert [a["id"] for a in everything] == [a.id for a in db_attempts]
    assert pages == max(1, -(-len(db_attempts) // 7))
    wanted = next((a.outcome for a in db_attempts if a.outcome != "answered"), "answered")
    some, _ = walk(client, "/campaigns/web/attempts", outcome=wanted, limit=3)
    assert [a["id"] for a in some] == [a.id for a in db_attempts if a.outcome == wanted]
    assert some and {a["outcome"] for a in some} == {wanted}
    middle = db_attempts[len(db_attempts) // 2]
    since = from_db(middle.created_at).isoformat()
    later, _ = walk(client, "/campaigns/web/attempts", since=since)
    assert [a["id"] for a in later] == [a.id for a in db_attempts
                                        if a.created_at >= middle.created_at]
    one = db_attempts[-1].number.phone
    national = "(%s) %s-%s" % (one[2:5], one[5:8], one[8:])
    mine, _ = walk(client, "/campaigns/web/attempts", number=national)
    assert [a["id"] for a in mine] == [a.id for a in db_attempts if a.number.phone == one]

    # export: streamed CSV equal, row for row, to the attempt table
    with client.stream("GET", "/campaigns/web/attempts.csv") as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/csv")
        text = "".join(reply.iter_text())
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == list(ATTEMPT_COLUMNS)
    assert table[1:] == expected_export()
    print("FIGURES export rows", len(table) - 1, "listing pages", pages)


def check_report(client, placed):
    """The report endpoints against counts taken from the attempt table here."""
    got = client.get("/campaigns/web/report").json()
    by_outcome = collections.Counter(a.outcome for a in placed)
    assert got["attempts"]["placed"] == len(placed) and got["attempts"]["in_flight"] == 0
    assert {k: v for k, v in got["attempts"]["by_outcome"].items() if v} == dict(by_outcome)
    per_number = collections.Counter(collections.Counter(a.number.id for a in placed).values())
    assert got["attempts_per_number"] == sorted([n, c] for n, c in per_number.items())
    assert sum(c for _, c in got["calls_per_hour"]) == len(placed)
    middle = placed[len(placed) // 2]
    since = from_db(middle.created_at).isoformat()
    later = client.get("/campaigns/web/report", params={"since": since}).json()
    assert later["attempts"]["placed"] == sum(a.created_at >= middle.created_at for a in placed)
    rows = list(csv.reader(io.StringIO(client.get("/campaigns/web/report.csv").text)))
    assert rows[0] == ["section", "key", "value"]
    assert ["attempts", "placed", str(len(placed))] in rows
    bad = client.get("/campaigns/web/report", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()["error"]
    backwards = client.get("/campaigns/web/report", params={"since": "2026-12-02",
                                                            "until": "2026-12-01"})
    assert backwards.status_code == 400 and "until" in backwards.json()["error"]
    print("FIGURES report", got["attempts"]["by_outcome"], "answer rate", got["answer_rate"])
