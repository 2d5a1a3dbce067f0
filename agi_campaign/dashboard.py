"""The web dashboard: server-rendered pages (Jinja2, autoescaped) and htmx fragments, on the
service's HTTP port next to the API (`create_app(service)`: api.create_app plus these routes).

Pages and fragments (every one but /login, /logout and /static needs the API's token or the
session cookie; guard.Guard sends a browser without them to /login):
- ``GET /login``, ``POST /login`` (form field ``token``; sets agi_campaign.session's cookie and
  answers 303 to ``next`` or ``/``; 401 with the form again when wrong), ``POST /logout``
  (clears the cookie; open: it only removes a cookie, and SameSite=Strict keeps other sites
  from sending one).
- ``GET /``: the campaign table; ``GET /parts/campaigns`` its rows (htmx polls them).
- ``GET /campaigns/{name}``: one campaign; ``.../live`` its live part (state, progress, calls
  in flight, calls per minute, recent attempts; polled), ``.../report`` the report
  (report.campaign_report, ``since``/``until`` as local times in the campaign's zone). The
  page does not compute the report: its report section loads it once the page is shown
  (htmx ``load``), again on "Show" and every REPORT_REFRESH_S with the range entered.

Costs of polling (bench/bench_dashboard.py, 1M numbers and 1M attempts on SQLite): the
campaign's status and forecast (status.campaign_status) and the table's answer rate (a GROUP BY
over all the campaign's attempts) are SharedFigures: computed by one request and shared by
every client for up to 10x their cost (at most CACHE_MOST_S); the rest of a poll (calls in
flight, latest attempts, calls per minute) is bounded queries (activity). A slow reply does
not pile requests up: htmx keeps at most one request in flight per element and queues only
the latest trigger (its default ``hx-sync`` queueing, "last").
- Actions (POST, need the X-CSRF-Token header with the cookie): ``.../{start,pause,resume,
  reset}`` (campaigns.apply_command), ``.../upload`` (multipart ``file``: api.import_numbers,
  the API upload's own path), ``GET .../dnc`` (check) and ``POST .../dnc/add``
  (api.dnc_check_number, api.dnc_add_numbers: the API's). They answer an HTML fragment with
  the API's status code (an error as a readable message, never a traceback).
Static files (``/static``: the CSS, dashboard.js (shows a JSON error, e.g. the guard's 413,
as a message) and the vendored htmx) are served without auth: they hold nothing secret and
the login page needs them. No asset comes from another host.
"""
import logging
import os
import pathlib
import shutil
import tempfile
import threading
import time

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from agi_campaign import (activity, api, campaigns, charts, clock, dnc, report, session,
                          status)
from agi_campaign.errors import AgiCampaignError, UsageError
from agi_campaign.models import Campaign

log = logging.getLogger(__name__)
HERE = pathlib.Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
OPEN_PATHS = api.OPEN_PATHS + ("/login", "/logout", "/static/")
PAGES = ("/", "/campaigns/", "/parts/")
COMMANDS = ("start", "pause", "resume", "reset")
CPM_MINUTES = 180
REPORT_REFRESH_S = 60    # the report section reloads itself (aggregates over all attempts)
REFRESH_S = 2
CACHE_COST_FACTOR = 10   # a shared figure is kept for 10x what it cost to compute ...
CACHE_MOST_S = 5.0       # ... and at most this long
CONFIRM = {"start": "Start campaign %s? It begins dialing.",
           "pause": "Pause campaign %s? Calls in flight finish; no new call starts.",
           "resume": "Resume campaign %s? It dials again.",
           "reset": "Reset campaign %s? Its failed numbers are dialed again from the first "
                    "attempt."}


class SharedFigures:
    """Figures that every client of one service process shares for a while, so that the
    dashboard's polling costs the database the same with one tab open or twenty.

    ``get(key, compute)`` returns the value computed for ``key`` while it is fresh, else calls
    ``compute()`` (one caller at a time per key: the others wait for its value instead of
    computing it again) and keeps the value for ``factor`` times what it took, at most
    ``most_s``. A figure that costs a millisecond (a small campaign) is thus recomputed at
    nearly every poll, and one that costs 0.7 s (a 1M-number campaign's status and forecast)
    at most every 5 s: the dashboard takes at most about a tenth of one database connection
    per figure, however many tabs poll it. ``forget(name)`` drops a campaign's figures (after a
    dashboard action, so that its effect shows at the next poll). ``monotonic``: the clock of
    the ages (pass time in)."""

    def __init__(self, monotonic=time.monotonic, factor=CACHE_COST_FACTOR,
                 most_s=CACHE_MOST_S):
        self.monotonic, self.factor, self.most_s = monotonic, factor, most_s
        self._lock = threading.Lock()
        self._entries = {}   # key -> [lock, expires (monotonic s), value]

    def get(self, key, compute):
        with self._lock:
            entry = self._entries.setdefault(key, [threading.Lock(), None, None])
        with entry[0]:
            began = self.monotonic()
            if entry[1] is not None and began < entry[1]:
                return entry[2]
            value = compute()
            done = self.monotonic()
            entry[1:] = [done + min(self.most_s, self.factor * (done - began)), value]
            return value

    def forget(self, name):
        """Drop the figures whose key names campaign ``name`` (keys are (kind, name))."""
        with self._lock:
            for key in [k for k in self._entries if k[1] == name]:
                self._entries[key][1] = None


def create_app(service):
    """api.create_app(service) with the dashboard's routes and static files."""
    app = api.create_app(service, open_paths=OPEN_PATHS, pages=PAGES)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    http = service.config.http if service is not None else None
    token = http.token.encode() if http is not None and http.token else None
    _routes(app, service, token)
    return app


def percent(rate):
    return "-" if rate is None else "%.1f\u00a0%%" % (100 * rate)


def forecast_text(fc):
    """The API's ``forecast`` as people read it: when it finishes (``finishes_at``), else why
    there is no estimate (``reason``); "(rough: few calls ended yet)" after a finish from the
    prior mix (``rough``); "cannot finish before end: " first when ``cannot_finish_before_end``
    is true, with the numbers expected left (``left_at_end``)."""
    fc = fc or {}
    text = ("finishes " + clock.iso_as_text(fc["finishes_at"]) if fc.get("finishes_at")
            else fc.get("reason") or "-")
    if fc.get("finishes_at") and fc.get("rough"):
        text += " (rough: few calls ended yet)"
    if fc.get("cannot_finish_before_end") and fc.get("left_at_end") is not None:
        text += "; about %d numbers left at its end" % fc["left_at_end"]
    return "cannot finish before end: " + text if fc.get("cannot_finish_before_end") else text


def campaign_view(obj, cfg):
    """One campaign's figures for the templates, from status.campaign_status's row: ``total``
    leaves out the numbers taken out by `numbers remove` (the bar is full when the rest are
    settled; the removed are shown apart)."""
    n = obj["numbers"]
    return {"name": obj["name"], "state": obj["state"], "reason": obj["reason"],
            "done": n["done"], "failed": n["failed"], "dnc": n["dnc"],
            "total": n["total"] - n["removed"], "removed": n["removed"],   # removed: not to call
            "settled": n["done"] + n["failed"] + n["dnc"], "pending": n["pending"],
            "in_flight": obj["in_flight"], "max_channels": cfg.max_channels,
            "forecast": forecast_text(obj.get("forecast")), "timezone": cfg.timezone,
            "type": obj["type"], "lists": list(cfg.dnc_lists), "region": cfg.region}


def _routes(app, service, token):
    def render(request, name, context, status_code=200, headers=None):
        context = dict(context, csrf=session.page_csrf(request.headers.get("cookie"), token,
                                                       time.time()),
                       refresh_s=REFRESH_S, report_refresh_s=REPORT_REFRESH_S)
        return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code,
                                          headers=headers)

    def failed(request, err):
        """A project error as a readable fragment, with the API's status code."""
        return render(request, "_message.html", {"error": True, "text": str(err)},
                      status_code=api.error_status(err))

    def now():
        return service.clock.now()

    def config():
        return service.config

    shared = SharedFigures()

    def view_of(row, cfg, stamp):
        """campaign_view of status.campaign_status (the API's campaign object), shared by
        every client (SharedFigures)."""
        return shared.get(("view", row.name), lambda: campaign_view(status.campaign_status(
            row, cfg, stamp, gap_s=status.tick_gap_s(config())), cfg))

    def table_rows():
        stamp = now()
        rows = {r.name: r for r in Campaign.select().order_by(Campaign.name)}
        out = []
        for name, cfg in sorted(config().campaigns.items()):
            if name in rows:
                view = dict(view_of(rows[name], cfg, stamp))
                view["answer_rate"] = shared.get(("answer_rate", name), lambda: percent(
                    report.answer_rate(report.outcome_counts(rows[name].id)[0])))
                out.append(view)
        return out

    def campaign_of(name):
        return campaigns.configured_row(config(), name)

    def live_context(name):
        row, cfg = campaign_of(name)
        stamp = now()
        view = view_of(row, cfg, stamp)
        zone = cfg.timezone
        return {"c": view, "live": activity.live_calls(row.id, zone, stamp),
                "recent": activity.recent_attempts(row.id, zone, stamp),
                "cpm_chart": Markup(charts.column_chart(
                    "cpm-chart", "Calls per minute, last %d hours (%s)" % (
                        CPM_MINUTES // 60, zone),
                    activity.calls_per_minute(row.id, stamp, CPM_MINUTES, zone)))}

    def report_context(name, since_text="", until_text=""):
        row, cfg = campaign_of(name)
        since, until = report.time_range(since_text.strip(), until_text.strip(), cfg.timezone,
                                         ("since", "until"))
        figures = report.campaign_report(row.id, cfg.timezone, since, until)
        by_outcome = figures["attempts"]["by_outcome"]
        return {"name": name, "r": figures, "since": since_text or "", "until": until_text or "",
                "answer_rate": percent(figures["answer_rate"]),
                "as_of": clock.show_time(now(), cfg.timezone),
                "outcome_chart": Markup(charts.bar_chart(
                    "outcome-chart", "Attempts by outcome", list(by_outcome.items()) + [
                        ("refused", figures["attempts"]["refused"])]))}

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/"):
        return render(request, "login.html", {"next": session.safe_next(next), "error": None})

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(request: Request, token_text: str = Form("", alias="token"),
              next: str = Form("/")):
        target = session.safe_next(next)
        if not session.token_given(token_text, token):
            client = request.client
            log.warning("dashboard login refused from %s: wrong token",
                        client.host if client else "?")
            return render(request, "login.html", {"next": target, "error": (
                "wrong token: give the service's HTTP token (the variable named by "
                "http.token_env)")}, status_code=401)
        reply = RedirectResponse(target, status_code=303)
        reply.set_cookie(session.COOKIE, session.cookie_value(token, time.time()), httponly=True,
                         samesite="strict", path="/", max_age=session.MAX_AGE_S)
        return reply

    @app.post("/logout", include_in_schema=False)
    def logout():
        reply = RedirectResponse("/login", status_code=303)
        reply.delete_cookie(session.COOKIE, path="/", httponly=True, samesite="strict")
        return reply

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    @api._in_db
    def index(request: Request):
        return render(request, "index.html", {"rows": table_rows()})

    @app.get("/parts/campaigns", response_class=HTMLResponse, include_in_schema=False)
    @api._in_db
    def campaign_rows(request: Request):
        return render(request, "_campaign_rows.html", {"rows": table_rows()})

    @app.get("/campaigns/{name}", response_class=HTMLResponse, include_in_schema=False)
    @api._in_db
    def campaign_page(request: Request, name: str):
        try:
            context = live_context(name)
        except AgiCampaignError as err:
            return render(request, "error.html", {"text": str(err)},
                          status_code=api.error_status(err))
        context["confirm"] = {c: CONFIRM[c] % name for c in COMMANDS}
        return render(request, "campaign.html", context)

    @app.get("/campaigns/{name}/live", response_class=HTMLResponse, include_in_schema=False)
    @api._in_db
    def campaign_live(request: Request, name: str):
        try:
            return render(request, "_campaign_live.html", live_context(name))
        except AgiCampaignError as err:
            return failed(request, err)

    @app.get("/campaigns/{name}/report", response_class=HTMLResponse, include_in_schema=False)
    @api._in_db
    def campaign_report(request: Request, name: str, since: str = "", until: str = ""):
        try:
            return render(request, "_report.html", report_context(name, since, until))
        except AgiCampaignError as err:
            return failed(request, err)

    def command_route(command):
        @app.post("/campaigns/{name}/" + command, response_class=HTMLResponse,
                  include_in_schema=False, name="dashboard_" + command)
        @api._in_db
        def apply(request: Request, name: str):
            try:
                campaign_of(name)
                row = campaigns.apply_command(name, command, now(),
                                              cause="dashboard %s" % command)
            except AgiCampaignError as err:
                return failed(request, err)
            finally:
                shared.forget(name)
            return render(request, "_message.html", {"error": False, "text": (
                "%s: %s done; the campaign is now %s" % (name, command, row.state.upper()))},
                headers={"HX-Trigger": "campaign-changed"})

    for command in COMMANDS:
        command_route(command)

    @app.post("/campaigns/{name}/upload", response_class=HTMLResponse, include_in_schema=False)
    async def upload(request: Request, name: str):
        folder = tempfile.mkdtemp(prefix="agi-campaign-upload-")
        try:
            async with request.form() as form:     # closes the spooled parts on every path
                part = form.get("file")
                if part is None or isinstance(part, str) or not part.filename:
                    raise UsageError("file: choose a CSV file of numbers to upload")
                filename, dry_run = part.filename, form.get("dry_run") == "1"
                path = os.path.join(folder, "dashboard-upload.csv")
                with open(path, "wb") as out:
                    await run_in_threadpool(shutil.copyfileobj, part.file, out)
            result = await run_in_threadpool(import_upload, name, path, dry_run)
        except AgiCampaignError as err:
            return failed(request, err)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            shared.forget(name)
        return render(request, "_import_report.html", {"r": result, "filename": filename},
                      headers={"HX-Trigger": "campaign-changed"})

    @api._in_db
    def import_upload(name, path, dry_run):
        return api.import_numbers(config(), name, path, now(), dry_run=dry_run)

    @app.get("/campaigns/{name}/dnc", response_class=HTMLResponse, include_in_schema=False)
    @api._in_db
    def dnc_check(request: Request, name: str, number: str = ""):
        try:
            _, cfg = campaign_of(name)
            if not number.strip():
                raise UsageError("number: give a phone number to check")
            found = api.dnc_check_number(config(), number, cfg.region)
        except AgiCampaignError as err:
            return failed(request, err)
        text = ("%s is on %s" % (found["number"], ", ".join(found["lists"]))
                if found["lists"] else "%s is on no Do-Not-Call list" % found["number"])
        return render(request, "_message.html", {"error": False, "text": text})

    @app.post("/campaigns/{name}/dnc/add", response_class=HTMLResponse, include_in_schema=False)
    @api._in_db
    def dnc_add(request: Request, name: str, number: str = Form(""), list_name: str = Form(
            "", alias="list")):
        try:
            _, cfg = campaign_of(name)
            if not number.strip():
                raise UsageError("number: give a phone number to add")
            if list_name not in cfg.dnc_lists:
                raise UsageError("list: choose one of the campaign's Do-Not-Call lists (%s)"
                                 % (", ".join(cfg.dnc_lists) or "it has none"))
            added = api.dnc_add_numbers(config(), list_name, [number], cfg.region, now(),
                                        "dashboard")
        except AgiCampaignError as err:
            return failed(request, err)
        text = "%s %s %s" % (dnc.normalized(number, cfg.region),
                             "added to" if added["added"] else "was already on", list_name)
        return render(request, "_message.html", {"error": False, "text": text})

