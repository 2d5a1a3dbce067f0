"""Hostile requests to the HTTP API: the real service in this process on the Asterisk sandbox, a
real HTTP client. Every endpoint x {no token, wrong token, bad JSON, unknown campaign or list,
oversize body, wrong types, wrong Content-Type} gets a clear 4xx JSON error naming the input,
and nothing is written: row counts, campaign states and DNC entries are the same after."""
import logging
import time

import httpx
import pytest

from agi_campaign import session
from agi_campaign.models import Campaign
from agi_campaign.testing.process import wait_port
from agi_campaign.testing.sandbox import free_port

from tests.hostile.support import row_counts
from tests.integration.support import Dialer, campaign, load

TOKEN_ENV = "AGI_CAMPAIGN_HOSTILE_API_TOKEN"
TOKEN = "hostile-api-token-SECRET-4242"
WRONG = "wrong-token-SECRET-9999999"
LIMIT = 2048
C = "/api/v1/campaigns/c"
JSON = {"Content-Type": "application/json"}

# (method, path, a valid body or None, the same path with an unknown campaign/list or None)
ENDPOINTS = [
    ("GET", "/api/v1/campaigns", None, None),
    ("GET", C, None, "/api/v1/campaigns/nope"),
    ("POST", C + "/start", {}, "/api/v1/campaigns/nope/start"),
    ("POST", C + "/pause", {}, "/api/v1/campaigns/nope/pause"),
    ("POST", C + "/resume", {}, "/api/v1/campaigns/nope/resume"),
    ("POST", C + "/reset", {"all": True}, "/api/v1/campaigns/nope/reset"),
    ("POST", C + "/numbers", {"numbers": ["+12025550150"]}, "/api/v1/campaigns/nope/numbers"),
    ("GET", C + "/attempts", None, "/api/v1/campaigns/nope/attempts"),
    ("GET", C + "/attempts.csv", None, "/api/v1/campaigns/nope/attempts.csv"),
    ("GET", C + "/report", None, "/api/v1/campaigns/nope/report"),
    ("GET", C + "/report.csv", None, "/api/v1/campaigns/nope/report.csv"),
    ("GET", "/api/v1/dnc/lists", None, None),
    ("GET", "/api/v1/dnc/lists/blocked", None, "/api/v1/dnc/lists/nope"),
    ("POST", "/api/v1/dnc/lists/blocked/add", {"numbers": ["+12025550160"]},
     "/api/v1/dnc/lists/nope/add"),
    ("POST", "/api/v1/dnc/lists/blocked/remove", {"numbers": ["+12025550140"]},
     "/api/v1/dnc/lists/nope/remove"),
    ("GET", "/api/v1/dnc/check?number=%2B12025550140", None, None),
    ("GET", "/api/v1/openapi.json", None, None),
    ("GET", "/metrics", None, None),
]

HUGE_CURSOR = "eyJhZnRlciI6IDEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDB9"   # {"after": 10**30}

# (method, path, body, the field the 422 message must name): a wrong type for each input
WRONG_TYPES = [
    ("POST", C + "/start", {"all": True}, "all"),
    ("POST", C + "/reset", {"all": "maybe"}, "all"),
    ("POST", C + "/numbers", {"numbers": "+12025550150"}, "numbers"),
    ("POST", C + "/numbers", {"rows": [{"phone": {"nested": 1}}]}, "rows"),
    ("POST", C + "/numbers", {"numbers": ["+12025550150"], "rows": [{"phone": "1"}]},
     "exactly one"),
    ("POST", C + "/numbers?delimiter=%3B", {"numbers": ["+12025550150"]}, "delimiter"),
    ("GET", C + "/attempts?limit=many", None, "limit"),
    ("GET", C + "/attempts?limit=5000", None, "limit"),
    ("GET", C + "/attempts?outcome=happy", None, "outcome"),
    ("GET", C + "/attempts?since=yesterday", None, "since"),
    ("GET", C + "/attempts?since=2026-01-01T10:00:00", None, "since"),
    ("GET", C + "/attempts?number=12", None, "number"),
    ("GET", C + "/attempts?cursor=xyz", None, "cursor"),
    ("GET", C + "/attempts?cursor=" + HUGE_CURSOR, None, "cursor"),
    ("GET", C + "/attempts?since=0001-01-01T00:00:00%2B05:00", None, "since"),
    ("GET", C + "/attempts.csv?since=0001-01-01T00:00:00%2B05:00", None, "since"),
    ("GET", C + "/attempts.csv?outcome=7", None, "outcome"),
    ("GET", C + "/report?since=yesterday", None, "since"),
    ("GET", C + "/report?until=0001-01-01T00:00:00%2B05:00", None, "until"),
    ("GET", C + "/report?since=2026-12-02&until=2026-12-01", None, "until"),
    ("GET", C + "/report.csv?since=" + "9" * 70, None, "since"),
    ("GET", "/api/v1/dnc/lists/blocked?limit=-1", None, "limit"),
    ("GET", "/api/v1/dnc/lists/blocked?cursor=eyJhZnRlciI6IDV9", None, "cursor"),
    ("POST", "/api/v1/dnc/lists/blocked/add", {"numbers": "+12025550160"}, "numbers"),
    ("POST", "/api/v1/dnc/lists/blocked/add", {"numbers": ["+12025550160", "12"]}, "'12'"),
    ("POST", "/api/v1/dnc/lists/blocked/add", {"numbers": ["2025550160"], "region": "XX"},
     "region"),
    ("POST", "/api/v1/dnc/lists/blocked/remove", {"numbers": [5]}, "numbers.0"),
    ("POST", "/api/v1/dnc/lists/blocked/remove", {"numbers": ["+12025550140", "x1"]}, "'x1'"),
    ("GET", "/api/v1/dnc/check", None, "number"),
    ("GET", "/api/v1/dnc/check?number=abc", None, "abc"),
]


@pytest.fixture
def api(asterisk, tmp_path, monkeypatch):
    """The service in this process with an `http:` section, campaign c holding 3 numbers,
    "blocked" holding one; yields (client without a token, the snapshot function)."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    port = free_port()
    dialer = Dialer(tmp_path)
    try:
        service, _ = dialer.start({"c": campaign()}, {"main": asterisk}, http={
            "port": port, "token_env": TOKEN_ENV, "max_upload_bytes": LIMIT})
        wait_port(port, 30)
        load("c", ["+12025550140", "+12025550141", "+12025550142"], tmp_path)
        with httpx.Client(base_url="http://127.0.0.1:%d" % port, timeout=30) as client:
            assert client.post("/api/v1/dnc/lists/blocked/add", json={
                "numbers": ["+12025550140"]}, headers=auth()).status_code == 200
            yield client
    finally:
        dialer.close()


def auth(token=TOKEN, **headers):
    return dict(headers, Authorization="Bearer " + token)


def snapshot():
    """Everything a request could write: row counts of every table, campaign states."""
    return row_counts(), {c.name: c.state for c in Campaign.select()}


def error_of(reply, status):
    assert reply.status_code == status, (reply.request.method, reply.request.url, reply.text)
    assert reply.headers["content-type"].startswith("application/json"), reply.headers
    message = reply.json()["error"]
    assert isinstance(message, str) and message
    return message


def test_hostile_api_every_endpoint_refuses_bad_requests_and_writes_nothing(api, caplog):
    before = snapshot()
    caplog.set_level(logging.DEBUG)
    checked = 0
    for method, path, body, unknown in ENDPOINTS:
        for headers in ({}, {"Authorization": "Bearer " + WRONG},
                        {"Authorization": "Basic " + TOKEN[:10]}):
            message = error_of(api.request(method, path, json=body, headers=headers), 401)
            assert "bearer token" in message
            checked += 1
        if method == "POST":    # bad JSON, wrong Content-Type
            message = error_of(api.post(path, content=b'{"numbers": [', headers=auth(**JSON)),
                               400)
            assert "not valid JSON" in message, message
            message = error_of(api.post(path, content=b"<numbers/>", headers=auth(
                **{"Content-Type": "application/xml"})), 415)
            assert "application/xml" in message and "application/json" in message
            checked += 2
        else:                   # a GET takes no body at all
            message = error_of(api.request(method, path, content=b'{"bad', headers=auth()), 400)
            assert "takes no request body" in message
            checked += 1
        if unknown is not None:
            message = error_of(api.request(method, unknown, json=body, headers=auth()), 404)
            assert "'nope'" in message and ("defined: c" in message
                                            or "configured lists: blocked" in message), message
            checked += 1
        oversize = b'{"numbers": ["' + b"1" * LIMIT + b'"]}'
        message = error_of(api.request(method, path, content=oversize, headers=auth(**JSON)),
                           413)
        assert "http.max_upload_bytes" in message and str(LIMIT) in message
        checked += 1
    for method, path, body, field in WRONG_TYPES:
        reply = api.request(method, path, json=body, headers=auth())
        assert 400 <= reply.status_code < 500 and reply.status_code != 401, reply.text
        assert field in error_of(reply, reply.status_code), (path, body, reply.text)
        checked += 1
    # an oversize upload sent chunked (no Content-Length): refused while it streams in
    chunks = (b"phone\n" + b"+12025550170\n" * 50 for _ in range(10))
    message = error_of(api.post(C + "/numbers", content=chunks,
                                headers=auth(**{"Content-Type": "text/csv"})), 413)
    checked += 1
    assert snapshot() == before
    for secret in (TOKEN, WRONG, TOKEN[:10]):
        assert secret not in caplog.text
    refusals = [r for r in caplog.records if "http 401" in r.getMessage()]
    assert len(refusals) == 3 * len(ENDPOINTS)
    print("FIGURES hostile api: %d bad requests refused, nothing written, %d 401s logged "
          "without the token" % (checked, len(refusals)))


def test_hostile_api_valid_requests_still_work_after(api):
    """The control: the same endpoints with a good token and body succeed (the refusals
    above are about the input, not a broken server)."""
    for method, path, body, _ in ENDPOINTS:
        if path.endswith(("/start", "/pause", "/resume", "/reset")):
            continue
        reply = api.request(method, path, json=body, headers=auth())
        assert reply.status_code == 200, (path, reply.text)
    assert api.post(C + "/start", json={}, headers=auth()).json()["state"] == "STARTNOW"
    again = api.post(C + "/start", headers=auth())
    assert "'start' applies only when it is READY" in error_of(again, 409)


DASHBOARD_POSTS = [("/campaigns/c/start", {}), ("/campaigns/c/pause", {}),
                   ("/campaigns/c/dnc/add", {"number": "+12025550161", "list": "blocked"})]


def test_hostile_api_forged_session_cookies_and_missing_csrf_are_refused(api, caplog):
    """The dashboard's session cookie opens the API to browsers: a forged cookie is no
    credential (401 on the API, 303 to /login on a page), a real cookie without the right
    X-CSRF-Token header changes nothing (403), and the token never shows in a log line, a
    cookie or a page."""
    before = snapshot()
    caplog.set_level(logging.DEBUG)
    now = time.time()
    real = session.cookie_value(TOKEN.encode(), now)     # as a login now would issue it
    forged = [TOKEN, session.csrf_value(TOKEN.encode(), now),
              session.cookie_value(WRONG.encode(), now), real[:-1], real + "0", real.upper(),
              "", "%00" + real, real.partition(".")[2],
              session.cookie_value(TOKEN.encode(), now - session.MAX_AGE_S - 60)]   # expired
    checked = 0
    for value in forged:
        api.cookies.clear()
        api.cookies.set(session.COOKIE, value)
        for method, path, body, _ in ENDPOINTS:
            error_of(api.request(method, path, json=body), 401)
            checked += 1
        for page in ("/", "/campaigns/c", "/parts/campaigns"):
            reply = api.get(page)
            assert reply.status_code == 303 and reply.headers["location"].startswith("/login")
            checked += 1
    api.cookies.clear()
    api.cookies.set("x" + session.COOKIE, real)     # the right value under another name
    error_of(api.get("/api/v1/campaigns"), 401)
    api.cookies.clear()
    wrong_login = api.post("/login", data={"token": WRONG})
    assert wrong_login.status_code == 401 and 'id="login-error"' in wrong_login.text
    assert "set-cookie" not in wrong_login.headers and WRONG not in wrong_login.text
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        reply = api.post("/login", data={"token": TOKEN, "next": target})
        assert reply.status_code == 303 and reply.headers["location"] == "/", target
    cookie = "%s=%s" % (session.COOKIE, api.cookies.get(session.COOKIE))
    assert session.session_issued(cookie, TOKEN.encode(), time.time()) is not None
    csrf_wrong = [{}, {"X-CSRF-Token": real}, {"X-CSRF-Token": TOKEN},
                  {"X-CSRF-Token": session.csrf_value(WRONG.encode(), now)},
                  {"X-CSRF-Token": session.csrf_value(TOKEN.encode(), now - 3600)},
                  {"Authorization": "Bearer " + WRONG}]
    for headers in csrf_wrong:
        for method, path, body, _ in ENDPOINTS:
            if method == "POST":
                message = error_of(api.post(path, json=body, headers=headers), 403)
                assert "X-CSRF-Token" in message
                checked += 1
        for path, form in DASHBOARD_POSTS:
            error_of(api.post(path, data=form, headers=headers), 403)
            checked += 1
        error_of(api.post("/campaigns/c/upload", headers=headers,
                          files={"file": ("x.csv", b"phone\n+12025550162\n", "text/csv")}), 403)
        checked += 1
    assert snapshot() == before
    # the control: the cookie with the page's CSRF value acts, through the API and the page
    good = {"X-CSRF-Token": session.page_csrf(cookie, TOKEN.encode(), time.time())}
    assert "+12025550140 is on blocked" in api.get("/campaigns/c/dnc",
                                                   params={"number": "+12025550140"}).text
    assert api.post("/campaigns/c/start", headers=good).status_code == 200
    # (the service may already have taken STARTNOW to RUNNING)
    assert api.get("/api/v1/campaigns/c").json()["state"] in ("STARTNOW", "RUNNING")
    text = caplog.text + "".join(str(c) for c in api.cookies.jar)
    for secret in (TOKEN, WRONG):
        assert secret not in text
    print("FIGURES hostile cookie: %d forged-cookie or CSRF-less requests refused, nothing "
          "written" % checked)
