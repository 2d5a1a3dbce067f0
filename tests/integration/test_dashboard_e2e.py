"""The web dashboard end to end: `agi-campaign run` as a child process on the Asterisk sandbox,
driven only through a real HTTP client (httpx) as a browser would (login form, session cookie,
the page's CSRF value in X-CSRF-Token): 303 to /login without the cookie, 403 without the CSRF
header, the CSV upload's import report, start / pause / resume through the dashboard's routes
(Asterisk's own events count the calls: none starts while paused), live calls and recent
attempts with masked numbers, the report and the export against the attempt table, and every
asset the pages reference served by the package (no other host)."""
import csv
import io
import re
import time

import httpx

from agi_campaign import session
from agi_campaign.models import Attempt, Campaign, Number, open_database
from agi_campaign.testing import harness
from agi_campaign.testing.process import wait_port
from agi_campaign.testing.sandbox import free_port

from tests.integration.support import (campaign, destinations_recorded, plan_numbers,
                                       prepared_service, wait_for)

TOKEN_ENV = "AGI_CAMPAIGN_TEST_DASH_TOKEN"
TOKEN = "dashboard-e2e-token-0123456789"
MASKED = re.compile(r"\+1\d{3}\*{5}\d{2}")


def in_flight():
    return Attempt.select().where(Attempt.status != "ended").count()


def state():
    return Campaign.get(Campaign.name == "dash").state


def csrf_of(page):
    """The CSRF value a page carries in <meta name="csrf-token">."""
    return re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page).group(1)


def assets_served(client, base, pages):
    """Every src/href of `pages` is a local path; each /static one is served (without the
    cookie: a fresh client). Returns the assets fetched."""
    fetched = set()
    with httpx.Client(base_url=base, timeout=30) as anonymous:
        for path, text in pages.items():
            for ref in re.findall(r'(?:src|href|action)="([^"]*)"', text):
                assert not re.match(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)", ref), (path, ref)
                assert ref.startswith(("/", "#")), (path, ref)
                if ref.startswith("/static/") and ref not in fetched:
                    reply = anonymous.get(ref)
                    assert reply.status_code == 200 and reply.content, ref
                    fetched.add(ref)
    return fetched


def test_dashboard_login_upload_start_pause_resume_report_export(asterisk, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    port = free_port()
    plan = plan_numbers(18, 61000, seed=13)
    phones = list(plan)
    config, service = prepared_service(
        tmp_path, {"main": asterisk},
        {"dash": campaign(max_channels=3, max_attempts=2, retry_delay_s=1)}, {},
        http={"port": port, "token_env": TOKEN_ENV, "max_upload_bytes": 1 << 20})
    base = "http://127.0.0.1:%d" % port
    client = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    with harness.ChannelMonitor(asterisk) as mon:
        try:
            service.start()
            wait_port(port, 30, service.proc)
            open_database(config.database.url)
            # without the cookie: pages go to /login, the API answers 401
            assert client.get("/").status_code == 303
            assert client.get("/").headers["location"] == "/login"
            assert client.get("/campaigns/dash").headers["location"] == \
                "/login?next=/campaigns/dash"
            assert client.get("/api/v1/campaigns").status_code == 401
            login_page = client.get("/login").text
            assert 'id="token"' in login_page and 'id="login-submit"' in login_page
            wrong = client.post("/login", data={"token": "not-the-token-000000"})
            assert wrong.status_code == 401 and 'id="login-error"' in wrong.text
            reply = client.post("/login", data={"token": TOKEN, "next": "/campaigns/dash"})
            assert reply.status_code == 303 and reply.headers["location"] == "/campaigns/dash"
            assert TOKEN not in reply.headers["set-cookie"]

            index = client.get("/")
            assert index.status_code == 200 and TOKEN not in index.text
            csrf = csrf_of(index.text)
            cookie = "%s=%s" % (session.COOKIE, client.cookies[session.COOKIE])
            assert csrf == session.page_csrf(cookie, TOKEN.encode(), time.time()) != ""
            row = client.get("/parts/campaigns").text.split('data-campaign="dash"')[1]
            assert ">READY<" in row and "0 of 3" in row and 'max="1"' in row

            # upload through the page's form: the importer's report
            lines = ["phone,name"] + ["%s,guest%d" % (p[2:] if i % 2 else p, i)
                                      for i, p in enumerate(phones)] + ["12,short"]
            upload = client.post("/campaigns/dash/upload", headers={"X-CSRF-Token": csrf},
                                 files={"file": ("guests.csv", "\n".join(lines) + "\n",
                                                 "text/csv")})
            assert upload.status_code == 200, upload.text
            figures = dict(re.findall(r'<td class="(\w+)">(\d+)</td>', upload.text))
            print("FIGURES upload", figures)
            assert (figures["rows"], figures["imported"], figures["invalid"]) == (
                str(len(phones) + 1), str(len(phones)), "1")
            assert "<td>%d</td><td>12</td>" % (len(phones) + 2) in upload.text
            assert Number.select().count() == len(phones)

            # no CSRF header: refused, nothing changes
            refused = client.post("/campaigns/dash/start")
            assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]
            assert state() == "ready"

            started = client.post("/campaigns/dash/start", headers={"X-CSRF-Token": csrf})
            assert started.status_code == 200 and "now STARTNOW" in started.text
            wait_for(lambda: ">RUNNING<" in client.get("/parts/campaigns").text, 30)

            # live calls show while it runs, numbers masked
            seen = []

            def live_calls_listed():
                live = client.get("/campaigns/dash/live").text
                calls = live.split('id="live-calls"')[1].split("</ul>")[0]
                seen[:] = re.findall(r"<li>([^<]*)</li>", calls)
                return bool(seen)
            wait_for(live_calls_listed, 60, step=0.3)
            assert all(MASKED.match(item) for item in seen), seen

            paused = client.post("/campaigns/dash/pause", headers={"X-CSRF-Token": csrf})
            assert paused.status_code == 200 and "now PAUSED" in paused.text
            assert client.get("/api/v1/campaigns/dash").json()["state"] == "PAUSED"
            wait_for(lambda: in_flight() == 0, 60)
            legs, attempts = mon.started, Attempt.select().count()
            time.sleep(2)           # 20 ticks: a paused campaign starts no call
            assert (mon.started, Attempt.select().count()) == (legs, attempts)
            page = client.get("/campaigns/dash").text
            assert re.search(r'id="state" class="state state-paused"[^>]*>PAUSED<', page)
            again = client.post("/campaigns/dash/pause", headers={"X-CSRF-Token": csrf})
            assert again.status_code == 409 and "class=\"error\"" in again.text

            resumed = client.post("/campaigns/dash/resume", headers={"X-CSRF-Token": csrf})
            assert resumed.status_code == 200 and "now STARTNOW" in resumed.text
            wait_for(lambda: state() == "completed", 150, step=1)
            wait_for(lambda: destinations_recorded("dash"), 30)

            page = client.get("/campaigns/dash").text
            placed = [a for a in Attempt.select(Attempt, Number).join(Number)
                      if a.outcome != "refused"]
            print("FIGURES calls", {"attempts": len(placed), "legs": mon.started,
                                    "legs_before_pause_end": legs})
            assert mon.started == len(placed) and legs < len(placed)
            # recent attempts: masked, never a whole number
            recent = page.split('id="recent-attempts"')[1].split("</table>")[0]
            shown = re.findall(r'<td class="number">([^<]*)</td>', recent)
            assert len(shown) == min(20, len(placed))
            assert all(MASKED.fullmatch(s) for s in shown), shown
            for e164 in phones:
                assert e164 not in page and e164[2:] not in page
            progress = re.search(r'<progress class="progress" id="progress" value="(\d+)" '
                                 r'max="(\d+)"', page)
            assert progress.groups() == (str(len(phones)), str(len(phones)))
            # the report: the attempt table's figures
            answered = sum(a.outcome == "answered" for a in placed)
            report = client.get("/campaigns/dash/report").text
            assert re.search(r"Attempts placed</th><td>%d<" % len(placed), report)
            assert "Attempts by outcome: answered %d," % answered in report
            # the page does not compute the report: its section fetches it once shown
            assert re.search(r'hx-get="/campaigns/dash/report" hx-trigger="load[,"]', page)
            # the export link: the cookie downloads it
            export = re.search(r'<a id="export"[^>]* href="([^"]+)" download>', page).group(1)
            csv_reply = client.get(export)
            assert csv_reply.status_code == 200
            assert re.search(r'attachment; filename="[^"]+\.csv"',
                             csv_reply.headers["content-disposition"])
            assert len(list(csv.reader(io.StringIO(csv_reply.text)))) == 1 + Attempt.select(
                ).count()
            fetched = assets_served(client, base, {"/login": login_page, "/": index.text,
                                                   "/campaigns/dash": page})
            assert fetched == {"/static/style.css", "/static/vendor/htmx.min.js",
                               "/static/dashboard.js"}
            out = client.post("/logout")
            assert out.status_code == 303
            assert client.get("/").status_code == 303
        finally:
            service.stop(graceful=True)
            client.close()
