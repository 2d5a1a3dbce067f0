"""The dashboard (agi_campaign.dashboard) through its app in-process (Starlette's TestClient):
login and the session cookie, the guard's 303 / 401 / 403, pages and fragments built from the
database, actions calling what the API calls, errors as readable messages, everything
escaped, numbers masked. The service end to end: tests/integration/test_dashboard_e2e.py."""
import datetime as dt
import re
import time
import types

import pytest
from fastapi.testclient import TestClient

from agi_campaign import campaigns, dashboard, session
from agi_campaign.clock import to_db
from agi_campaign.config import parse_config
from agi_campaign.models import Attempt, Campaign, DncEntry, Number

from tests.unit.support import CAMPAIGN, SERVER, FakeClock, make_numbers

TOKEN = "dashboard-unit-token-0123456789"


def csrf_of(client):
    """The X-CSRF-Token header of ``client``'s session (logged in by ``login``)."""
    cookie = "%s=%s" % (session.COOKIE, client.cookies[session.COOKIE])
    return {"X-CSRF-Token": session.page_csrf(cookie, TOKEN.encode(), time.time())}


@pytest.fixture
def client(db, monkeypatch):
    monkeypatch.setenv("AGI_CAMPAIGN_API_TOKEN", TOKEN)
    config = parse_config({"servers": {"main": SERVER}, "http": {},
                           "dnc_lists": {"global": {}, "other": {}},
                           "campaigns": {"c1": dict(CAMPAIGN, server="main"),
                                         "c2": dict(CAMPAIGN, server="main",
                                                    timezone="Asia/Tokyo")}},
                          "test.yaml")
    clock = FakeClock()
    campaigns.sync_campaigns(config, clock.now())
    service = types.SimpleNamespace(config=config, clock=clock)
    with TestClient(dashboard.create_app(service), follow_redirects=False) as c:
        c.clock = clock
        yield c


def login(client):
    reply = client.post("/login", data={"token": TOKEN})
    assert reply.status_code == 303
    return reply


def test_dashboard_pages_redirect_to_login_without_the_cookie(client):
    for path in ("/", "/campaigns/c1", "/parts/campaigns", "/campaigns/c1/live"):
        reply = client.get(path)
        assert reply.status_code == 303, path
        assert reply.headers["location"].startswith("/login"), path
    assert client.get("/campaigns/c1").headers["location"] == "/login?next=/campaigns/c1"
    htmx = client.get("/parts/campaigns", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"] == "/login"
    # the API keeps its 401, and posts are never redirected
    assert client.get("/api/v1/campaigns").status_code == 401
    assert client.post("/campaigns/c1/start").status_code == 401
    assert client.get("/login").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_dashboard_login_sets_a_derived_cookie_and_a_wrong_token_is_refused(client):
    wrong = client.post("/login", data={"token": TOKEN[:-1]})
    assert wrong.status_code == 401 and 'id="login-error"' in wrong.text
    assert "set-cookie" not in wrong.headers
    reply = client.post("/login", data={"token": TOKEN, "next": "/campaigns/c1"})
    assert reply.status_code == 303 and reply.headers["location"] == "/campaigns/c1"
    cookie = reply.headers["set-cookie"]
    issued = int(cookie.split("=", 1)[1].split(".")[0])
    assert abs(issued - time.time()) < 600
    assert cookie.startswith("%s=%s;" % (session.COOKIE, session.cookie_value(TOKEN.encode(),
                                                                               issued)))
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "Max-Age=%d" % session.MAX_AGE_S in cookie
    assert TOKEN not in cookie
    offsite = client.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert offsite.headers["location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and TOKEN not in page.text
    # the second login (offsite next) issued the cookie the page's CSRF value belongs to
    assert 'content="%s"' % csrf_of(client)["X-CSRF-Token"] in page.text
    client.cookies.clear()
    assert 'name="csrf-token" content=""' in client.get("/login").text   # none before login
    client.post("/login", data={"token": TOKEN})
    out = client.post("/logout")
    assert out.status_code == 303 and 'Max-Age=0' in out.headers["set-cookie"]
    client.cookies.clear()
    assert client.get("/").status_code == 303


def test_dashboard_cookie_state_changes_need_the_csrf_header(client):
    login(client)
    for headers in ({}, {"X-CSRF-Token": "0" * 64},
                    {"X-CSRF-Token": client.cookies[session.COOKIE]},
                    {"X-CSRF-Token": session.csrf_value(TOKEN.encode(), time.time() - 99)}):
        reply = client.post("/campaigns/c1/start", headers=headers)
        assert reply.status_code == 403 and "X-CSRF-Token" in reply.json()["error"]
        reply = client.post("/api/v1/campaigns/c1/start", headers=headers)
        assert reply.status_code == 403
    assert Campaign.get(Campaign.name == "c1").state == "ready"
    # the API accepts the cookie (GET; POST with the header), and still the bearer token
    assert client.get("/api/v1/campaigns/c1").json()["state"] == "READY"
    client.cookies.clear()
    bearer = {"Authorization": "Bearer " + TOKEN}
    assert client.post("/api/v1/campaigns/c1/resume", headers=bearer).status_code == 409


def test_dashboard_campaign_table_rows(client, db):
    login(client)
    row = Campaign.get(Campaign.name == "c1")
    make_numbers(row, 4)
    Number.update(status="done").where(Number.id.in_(
        Number.select(Number.id).where(Number.campaign == row).limit(1))).execute()
    page = client.get("/")
    assert '<table id="campaigns"' in page.text
    rows = client.get("/parts/campaigns").text
    c1 = rows.split('data-campaign="c1"')[1].split("</tr>")[0]
    assert '<progress class="progress" value="1" max="4"' in c1
    assert "done 1 · failed 0 · DNC 0 of 4" in c1
    assert re.search(r'class="in-flight">0 of 3<', c1)
    assert re.search(r'class="state state-ready">READY<', c1)
    assert 'href="/campaigns/c1"' in c1 and "waiting for start" in c1
    assert "the campaign is READY: it runs once started" in c1      # the forecast's reason
    assert 'data-campaign="c2"' in rows


def test_dashboard_progress_leaves_removed_numbers_out(client, db):
    """Numbers taken out by `numbers remove` are not to call: the bar is full without them."""
    login(client)
    row = Campaign.get(Campaign.name == "c1")
    make_numbers(row, 4)
    first = Number.select(Number.id).where(Number.campaign == row).order_by(Number.id).limit(1)
    Number.update(status="done").where(Number.id.in_(first)).execute()
    Number.update(status="removed").where(Number.status == "pending").execute()
    c1 = client.get("/parts/campaigns").text.split('data-campaign="c1"')[1].split("</tr>")[0]
    assert '<progress class="progress" value="1" max="1"' in c1
    assert "DNC 0 of 1 (3 removed)" in c1


def test_dashboard_actions_apply_commands_and_show_errors(client):
    login(client)
    reply = client.post("/campaigns/c1/start", headers=csrf_of(client))
    assert reply.status_code == 200 and "now STARTNOW" in reply.text
    assert reply.headers["hx-trigger"] == "campaign-changed"
    again = client.post("/campaigns/c1/start", headers=csrf_of(client))
    assert again.status_code == 409 and "applies only when it is READY" in again.text
    assert "Traceback" not in again.text
    missing = client.post("/campaigns/nope/pause", headers=csrf_of(client))
    assert missing.status_code == 404 and "defined: c1" in missing.text
    page = client.get("/campaigns/nope")
    assert page.status_code == 404 and "not in test.yaml" in page.text


def test_dashboard_upload_shows_the_import_report(client):
    login(client)
    csv = b"phone,name\n2025550123,a\n2025550124,b\n2025550124,c\n<script>x</script>,d\n"
    reply = client.post("/campaigns/c1/upload", headers=csrf_of(client),
                        files={"file": ("list.csv", csv, "text/csv")})
    assert reply.status_code == 200, reply.text
    figures = dict(re.findall(r'<td class="(\w+)">(\d+)</td>', reply.text))
    assert figures == {"rows": "4", "imported": "2", "duplicates": "1", "dnc": "0",
                       "invalid": "1", "blank": "0"}
    # the rejected row, its line and its value escaped
    assert "<td>5</td><td>&lt;script&gt;x&lt;/script&gt;</td>" in reply.text
    assert "<script>" not in reply.text
    assert Number.select().count() == 2
    none = client.post("/campaigns/c1/upload", headers=csrf_of(client), data={"x": "1"})
    assert none.status_code == 400 and "choose a CSV file" in none.text


def test_dashboard_dnc_check_and_add(client):
    login(client)
    check = client.get("/campaigns/c1/dnc", params={"number": "202-555-0123"})
    assert "+12025550123 is on no Do-Not-Call list" in check.text
    added = client.post("/campaigns/c1/dnc/add", headers=csrf_of(client),
                        data={"number": "2025550123", "list": "global"})
    assert "+12025550123 added to global" in added.text
    assert [e.phone for e in DncEntry.select()] == ["+12025550123"]
    assert "is on global" in client.get("/campaigns/c1/dnc", params={"number": "2025550123"}).text
    bad = client.post("/campaigns/c1/dnc/add", headers=csrf_of(client),
                      data={"number": "12", "list": "global"})
    assert bad.status_code == 422 and "not a valid phone number" in bad.text
    other = client.post("/campaigns/c1/dnc/add", headers=csrf_of(client),
                        data={"number": "2025550124", "list": "other"})
    assert other.status_code == 400 and "Do-Not-Call lists (global)" in other.text
    assert DncEntry.select().count() == 1


def test_dashboard_campaign_page_masks_numbers_and_reports(client):
    login(client)
    row = Campaign.get(Campaign.name == "c1")
    phones = make_numbers(row, 2)
    numbers = list(Number.select().order_by(Number.id))
    at = to_db(client.clock.now() - dt.timedelta(minutes=5))
    Attempt.create(number=numbers[0], campaign=row, seq=1, token="t1", server="main",
                   status="ended", outcome="answered", created_at=at, answered_at=at,
                   ended_at=at, billsec_s=12)
    Attempt.create(number=numbers[1], campaign=row, seq=1, token="t2", server="main",
                   status="dialing", created_at=to_db(client.clock.now()))
    page = client.get("/campaigns/c1")
    assert page.status_code == 200
    for hook in ('id="state"', 'id="progress"', 'id="live-calls"', 'id="cpm-chart"', 'id="recent-attempts"', 'id="start"', 'id="pause"',
                 'id="resume"', 'id="reset"', 'id="upload"', 'id="csv-file"',
                 'id="upload-submit"', 'id="import-report"', 'id="dnc-check"',
                 'id="dnc-number"', 'id="dnc-list"', 'id="dnc-check-submit"',
                 'id="dnc-add-submit"', 'id="dnc-result"', 'id="report"',
                 'id="report-since"', 'id="report-until"', 'id="action-result"'):
        assert hook in page.text, hook
    assert '<a id="export" class="button" href="/api/v1/campaigns/c1/attempts.csv" download>' \
        in page.text
    for e164 in phones:
        assert e164 not in page.text and e164[2:] not in page.text
        assert e164[:5] + "*****" + e164[-2:] in page.text
    live = client.get("/campaigns/c1/live").text
    calls = live.split('id="live-calls"')[1].split("</ul>")[0]
    assert calls.count("<li>") == 1 and "ringing" in calls
    # the page does not compute the report: its section loads it once shown (htmx "load")
    assert 'id="outcome-chart"' not in page.text
    assert re.search(r'hx-get="/campaigns/c1/report" hx-trigger="load, submit, every \d+s"',
                     page.text)
    full = client.get("/campaigns/c1/report").text
    assert 'id="outcome-chart"' in full
    assert "Attempts by outcome: answered 1," in full               # the chart's desc
    assert "total 2 calls" in page.text                            # calls per minute
    since = (client.clock.now() - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    ranged = client.get("/campaigns/c1/report", params={"since": since})
    assert "Attempts by outcome: answered 0," in ranged.text
    bad = client.get("/campaigns/c1/report", params={"since": since, "until": since})
    assert bad.status_code == 400 and "is not after since" in bad.text
    for value, words in (("0001-01-01T00:00", "out of range"), ("yesterday", "not an ISO 8601 time")):
        bad = client.get("/campaigns/c2/report", params={"since": value})   # UTC+9
        assert bad.status_code == 400 and words in bad.text, bad.text


def test_dashboard_pages_reference_only_packaged_assets(client):
    login(client)
    for path in ("/login", "/", "/campaigns/c1"):
        text = client.get(path).text
        refs = re.findall(r'(?:src|href)="([^"]*)"', text)
        assert refs, path
        for ref in refs:
            assert not re.match(r"^(?:[a-z]+:)?//", ref), (path, ref)
            if ref.startswith("/static/"):
                assert client.get(ref).status_code == 200, ref


def test_dashboard_forecast_text_shows_the_finish_or_the_reason():
    text = dashboard.forecast_text
    assert text({"finishes_at": "2026-12-01T10:05:00-05:00", "reason": None}) == \
        "finishes 2026-12-01 10:05:00 -05:00"
    assert text({"finishes_at": None, "reason": "no number left to call"}) == \
        "no number left to call"
    assert text({"finishes_at": "2026-12-24T19:00:00+01:00", "reason": None,
                 "cannot_finish_before_end": True}) == \
        "cannot finish before end: finishes 2026-12-24 19:00:00 +01:00"
    assert text({"finishes_at": None, "reason": "outside its window",
                 "cannot_finish_before_end": True}) == \
        "cannot finish before end: outside its window"
    assert text(None) == "-"


def test_dashboard_forecast_text_marks_rough_forecasts_and_numbers_left_at_end():
    at = "2026-12-01T09:30:00+01:00"
    assert dashboard.forecast_text({"finishes_at": at, "rough": True}) == (
        "finishes 2026-12-01 09:30:00 +01:00 (rough: few calls ended yet)")
    late = dashboard.forecast_text({"finishes_at": None, "reason": "no finish within 366 days",
                                    "cannot_finish_before_end": True, "left_at_end": 1234})
    assert late == ("cannot finish before end: no finish within 366 days; about 1234 numbers "
                    "left at its end")


def test_dashboard_shared_figures_kept_for_ten_times_their_cost_and_forgotten_on_action():
    ticks = [100.0]
    shared = dashboard.SharedFigures(monotonic=lambda: ticks[0], factor=10, most_s=5)
    calls = []

    def compute(cost_s):
        def run():
            ticks[0] += cost_s
            calls.append(cost_s)
            return len(calls)
        return run
    assert shared.get(("view", "c1"), compute(0.1)) == 1     # cost 0.1 s: kept 1 s
    ticks[0] += 0.9
    assert shared.get(("view", "c1"), compute(0.1)) == 1
    ticks[0] += 0.2
    assert shared.get(("view", "c1"), compute(2.0)) == 2     # cost 2 s: kept 5 s, not 20
    ticks[0] += 4.9
    assert shared.get(("view", "c1"), compute(2.0)) == 2
    assert shared.get(("view", "c2"), compute(0.0)) == 3     # one entry per key
    shared.forget("c1")
    assert shared.get(("view", "c1"), compute(0.0)) == 4     # a dashboard action forgets
    assert shared.get(("view", "c2"), compute(0.0)) == 5     # zero cost: never kept
