"""The service's HTTP API (FastAPI on uvicorn, agi_campaign.httpserver): `/api/v1/...`, plus
`/healthz`, `/readyz` and `/metrics`.

Contract (`create_app(service)` around a running agi_campaign.service.Service):
- Auth: every path but `/healthz` and `/readyz` (unknown paths and `/api/v1/openapi.json`
  included) needs `Authorization: Bearer <token>` (http.token_env), or the dashboard's session
  cookie (agi_campaign.session) plus, on a POST, its `X-CSRF-Token` header (403 without).
  guard.Guard checks it before any body is read: 401, logged with method, path and client
  address, never the token.
- Bodies: at most http.max_upload_bytes on every endpoint (413), none on GET (400); JSON
  endpoints answer 415 to another Content-Type; the upload takes text/csv or application/json.
- Errors are JSON `{"error": "<message>"}`: bad JSON 400, invalid fields 422 (naming each
  field), unknown campaign or list 404 (naming the defined ones), a state that does not allow
  the command 409, a bad number 422 (naming it), a bad cursor or region 400. Nothing is
  written when a request fails: commands, imports and DNC changes are single transactions
  that validate first, as in the CLI.
- Handlers only translate: they call what the CLI calls (campaigns.apply_command,
  importer.import_csv + campaigns.reopen_after_import, the dnc module with
  dnc.refuse_invalid / dnc.region_for, numbers.attempt_page for listing and export). The
  dashboard (agi_campaign.dashboard) shares `import_numbers`, `dnc_add_numbers` and
  `dnc_check_number` with these endpoints, and shows status.campaign_status's rows as they do.
- Endpoints are sync and run in the server's worker threads, each inside
  `database.connection_context()` (`_in_db`); the upload is async only to stream its body to a
  temporary file, then imports in a worker thread with `workers=0` (the importer's process
  pool would fork or spawn from a threaded process; in-process parsing of a bounded upload is
  the safe choice).
- Cursors are opaque (apimodels.encode_cursor: the last id, or phone for DNC entries); pages
  are keyset pages, `limit` <= 1000. `since` is ISO 8601 with an offset; `number` is read as
  the CLI reads it (the campaign's region).
- The attempts export (`attempts.csv`) is `numbers export --attempts`'s CSV, streamed one
  keyset page (1000 rows) at a time up to the last attempt when the request came.
- Reports: `/campaigns/{name}/report` (JSON) and `report.csv` are `agi-campaign report`'s
  figures (agi_campaign.report), `since`/`until` read as the CLI reads them.
- Campaign objects: `status --json`'s fields, `forecast` included (agi_campaign.forecast:
  `finishes_at`, `remaining`, `reason`, `cannot_finish_before_end`, `left_at_end`...).
  No /docs page (it loads scripts from a CDN); the schema is `/api/v1/openapi.json`,
  published as docs/openapi.json (`make openapi`).
"""
import csv
import datetime as dt
import functools
import io
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from typing import Optional

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import AwareDatetime, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from agi_campaign import (__version__, apimodels as m, campaigns, dnc, health,
                          guard, importer, metrics, numbers, report, status, uploads)
from agi_campaign.clock import show_time
from agi_campaign.config import HTTP_FIELDS
from agi_campaign.db import database
from agi_campaign.errors import (AgiCampaignError, ConfigError, CsvImportError, NotFoundError,
                                 PhoneError, StateError, UsageError)
from agi_campaign.models import Campaign, DncEntry, Outcome

log = logging.getLogger(__name__)

API = "/api/v1"
OPEN_PATHS = ("/healthz", "/readyz")
_BEARER = HTTPBearer(auto_error=False, description="http.token_env's token")
ERROR_STATUS = ((NotFoundError, 404), (StateError, 409), (CsvImportError, 422),
                (PhoneError, 422), (UsageError, 400), (ConfigError, 400))


class Unauthorized(Exception):
    """A request without a valid bearer token (answered 401)."""


def error_status(err):
    """The HTTP status of one of the project's errors (500 for an unexpected one)."""
    for cls, code in ERROR_STATUS:
        if isinstance(err, cls):
            return code
    return 500


def create_app(service, open_paths=OPEN_PATHS, pages=()):
    """The app around ``service`` (None: only to publish the OpenAPI schema; every request but
    the health checks is then refused). ``open_paths`` and ``pages``: guard.Guard's (the
    dashboard adds its login and static files, and its pages)."""
    app = FastAPI(title="agi-campaign", version=__version__, openapi_url=None, docs_url=None,
                  redoc_url=None, description=__doc__)
    app.state.service = service
    http = service.config.http if service is not None else None
    token = http.token.encode() if http is not None and http.token else None
    app.add_middleware(guard.Guard, token=token,
                       limit=http.max_upload_bytes if http else HTTP_FIELDS[
                           "max_upload_bytes"].default,
                       open_paths=open_paths, pages=pages)

    def authorized(request: Request, _bearer=Depends(_BEARER)):
        """Checked by guard.Guard before the body is read (the bearer token, or the dashboard's
        session cookie); again here (and declared in the OpenAPI schema) for every route that
        depends on it."""
        if guard.credentials(request.headers, token, time.time()) is None:
            raise Unauthorized()

    @app.exception_handler(Unauthorized)
    def _unauthorized(request, exc):
        return JSONResponse({"error": guard.UNAUTHORIZED}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    def _invalid(request, exc):
        errors = exc.errors()
        bad_json = any(err.get("type") == "json_invalid" for err in errors)
        return JSONResponse({"error": validation_message(errors)},
                            status_code=400 if bad_json else 422)

    @app.exception_handler(HTTPException)
    def _http_error(request, exc):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(AgiCampaignError)
    def _project_error(request, exc):
        return JSONResponse({"error": str(exc)}, status_code=error_status(exc))

    @app.get("/healthz", tags=["health"])
    def healthz():
        """The process is alive and serving HTTP (no dependency checked)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz():
        """Ready to dial: database reachable, scheduler ticking, AMI connected; 503 when the
        database or scheduler fails or no server's AMI is connected; 200 "degraded" when some
        server's AMI is down and another's is up (agi_campaign.health)."""
        ready, checks = health.readiness(service)
        status = ("ok" if all(c["ok"] for c in checks.values()) else "degraded") if ready \
            else "unavailable"
        return JSONResponse({"status": status, "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/metrics", tags=["metrics"], dependencies=[Depends(authorized)],
             response_class=PlainTextResponse)
    def scrape():
        """Prometheus text exposition of the service's metrics."""
        body, content_type = metrics.exposition(service.metrics)
        return PlainTextResponse(body, media_type=content_type)

    _api_routes(app, service, authorized)
    generate = app.openapi

    def schema():
        """FastAPI's schema plus the JSON upload body (the upload endpoint reads its body
        itself, so FastAPI does not see that model)."""
        out = generate()
        out["components"]["schemas"].setdefault("NumbersUpload", m.NumbersUpload.model_json_schema(
            ref_template="#/components/schemas/{model}"))
        return out
    app.openapi = schema
    return app


def validation_message(errors):
    """One line naming each invalid field of a request (pydantic's error list)."""
    parts = []
    for err in errors[:10]:
        if err.get("type") == "json_invalid":
            parts.append("body: not valid JSON (%s)" % (err.get("ctx") or {}).get(
                "error", "JSON decode error"))
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
        parts.append("%s: %s" % (where, err.get("msg", "invalid")))
    return "invalid request: " + "; ".join(parts)


def _in_db(endpoint):
    """Run a sync endpoint inside ``database.connection_context()`` in the thread that runs it.

    A decorator, not a FastAPI dependency: FastAPI enters a sync ``yield`` dependency in
    another worker thread than the endpoint's, and Peewee's connection state is per thread,
    so the dependency's connection would not be the one the endpoint uses."""
    @functools.wraps(endpoint)
    def run(*args, **kwargs):
        with database.connection_context():
            return endpoint(*args, **kwargs)
    return run


def json_content(request: Request):
    """415 for a request body that is not ``application/json`` (an empty body is fine)."""
    if request.headers.get("content-length", "0") != "0" or request.headers.get(
            "transfer-encoding"):
        kind = guard.media_type(request.headers.get("content-type"))
        if kind != guard.JSON_TYPE:
            raise HTTPException(415, "Content-Type %r: this endpoint takes application/json"
                                % (kind or "none"))


def _attempt_json(row, zone):
    """An attempt row as JSON; its times in `zone` (the campaign's) to the second."""
    out = dict(zip(numbers.ATTEMPT_FIELDS, row))
    for key in ("created_at", "answered_at", "ended_at"):
        out[key] = show_time(out[key], zone, iso=True)
    if out["opted_out"] is not None:
        out["opted_out"] = bool(out["opted_out"])
    return out


def _csv_chunks(campaign_id, filters, page=numbers.PAGE):
    """The attempts CSV (numbers.ATTEMPT_COLUMNS, as `numbers export --attempts` writes it) in
    text chunks of one keyset page each: at most one page is held at a time, and each page is
    read in a connection of its own (the chunks are produced in whatever worker thread the
    server iterates in)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take():
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(numbers.ATTEMPT_COLUMNS)
    yield take()
    after = 0
    while True:
        with database.connection_context():
            rows = numbers.attempt_page(campaign_id, after, page, **filters)
        writer.writerows(numbers.attempt_csv_row(row) for row in rows)
        yield take()
        if len(rows) < page:
            return
        after = rows[-1][0]


IMPORT_MEANING = {0: "every row was imported, a duplicate or on a Do-Not-Call list",
                  3: "some rows were invalid (see rejected) and at least one was imported",
                  4: "nothing was imported: the file had no data row or only invalid ones"}


def _api_routes(app, service, authorized):
    """The /api/v1 endpoints (the health checks and /metrics are create_app's own)."""

    def config():
        """The running config: read per request, so a reload (SIGHUP) shows at once."""
        return service.config

    guarded = [Depends(authorized)]
    with_json = [Depends(authorized), Depends(json_content)]

    def now():
        return service.clock.now()

    def campaign_object(row, cfg):
        return status.campaign_status(row, cfg, now(), gap_s=status.tick_gap_s(config()))

    def configured_row(name):
        return campaigns.configured_row(config(), name)

    @app.get(API + "/openapi.json", dependencies=guarded, include_in_schema=False)
    def openapi():
        return JSONResponse(app.openapi())

    @app.get(API + "/campaigns", tags=["campaigns"], dependencies=guarded,
             response_model=m.CampaignList)
    @_in_db
    def list_campaigns():
        """Every configured campaign: `status --json`'s fields (state, reason, counts and the
        completion `forecast`)."""
        rows = {r.name: r for r in Campaign.select().order_by(Campaign.name)}
        return {"campaigns": [campaign_object(rows[name], cfg) for name, cfg
                              in sorted(config().campaigns.items()) if name in rows]}

    @app.get(API + "/campaigns/{name}", tags=["campaigns"], dependencies=guarded,
             response_model=m.CampaignObject, responses=ERRORS)
    @_in_db
    def get_campaign(name: str):
        """One campaign (404 naming the defined ones when it is not in the config)."""
        return campaign_object(*configured_row(name))

    def command_route(command):
        options = m.ResetRequest if command == "reset" else m.CommandRequest

        @app.post(API + "/campaigns/{name}/" + command, tags=["campaigns"],
                  dependencies=with_json, response_model=m.CampaignObject, responses=ERRORS,
                  name=command + "_campaign",
                  summary="%s a campaign (`agi-campaign campaign %s`)" % (
                      command.capitalize(), command))
        @_in_db
        def apply(name: str, body: Optional[options] = None):
            """409 when the campaign's state does not allow it (the message says which)."""
            _, cfg = configured_row(name)
            row = campaigns.apply_command(name, command, now(), cause="api %s" % command,
                                          rearm_all=bool(getattr(body, "all", False)))
            return campaign_object(row, cfg)

    for command in ("start", "pause", "resume", "reset"):
        command_route(command)

    @app.post(API + "/campaigns/{name}/numbers", tags=["numbers"], dependencies=guarded,
              response_model=m.ImportResult, responses=ERRORS, openapi_extra=UPLOAD_BODY)
    async def upload_numbers(name: str, request: Request, dry_run: bool = False,
                             phone_column: Optional[str] = Query(None, max_length=200),
                             delimiter: Optional[str] = Query(None, min_length=1, max_length=1),
                             encoding: Optional[str] = Query(None, max_length=40)):
        """Import numbers as `agi-campaign numbers import` does: a CSV body (text/csv) or JSON
        (application/json: {"numbers": [...]} or {"rows": [{"phone": ..., ...}]}), at most
        http.max_upload_bytes. The import writes everything or nothing; the report is the
        CLI's."""
        kind = guard.media_type(request.headers.get("content-type"))
        if kind not in uploads.CSV_TYPES + (guard.JSON_TYPE,):
            raise HTTPException(415, "Content-Type %r: send text/csv (a CSV file) or "
                                "application/json ({\"numbers\": [...]} or {\"rows\": [...]})"
                                % (kind or "none"))
        campaigns.configured(config(), name)
        folder = tempfile.mkdtemp(prefix="agi-campaign-upload-")
        try:
            path = os.path.join(folder, "http-upload.csv")
            if kind == guard.JSON_TYPE:
                for option, value in (("delimiter", delimiter), ("encoding", encoding)):
                    if value is not None:
                        raise UsageError("%s: only for a CSV body (text/csv); a JSON upload is "
                                         "read as it is, leave %s out" % (option, option))
                try:
                    upload = m.NumbersUpload.model_validate_json(await request.body())
                except ValidationError as err:
                    raise RequestValidationError(err.errors()) from None
                phone_column = uploads.write_csv(upload, path)
            else:
                await uploads.save_body(request, path)
            return await run_in_threadpool(import_file, name, path, dry_run, phone_column,
                                           delimiter, encoding)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @_in_db
    def import_file(name, path, dry_run, phone_column, delimiter, encoding):
        return import_numbers(config(), name, path, now(), dry_run=dry_run,
                              phone_column=phone_column, delimiter=delimiter,
                              encoding=encoding)

    def attempt_filters(name, outcome, since, number):
        row, cfg = configured_row(name)
        if since is not None:
            try:
                since.astimezone(dt.timezone.utc)   # before any row is streamed
            except (OverflowError, ValueError):
                raise UsageError("since: %s is out of range; give a time like "
                                 "2026-12-01T09:00:00+01:00" % since.isoformat()) from None
        phone_e164 = None if number is None else phone_or_error(number, cfg.region)
        return row, cfg, {"outcome": outcome.value if outcome else None, "since": since,
                          "phone_e164": phone_e164}

    @app.get(API + "/campaigns/{name}/attempts", tags=["attempts"], dependencies=guarded,
             response_model=m.AttemptPage, responses=ERRORS)
    @_in_db
    def list_attempts(name: str, outcome: Optional[Outcome] = None,
                      since: Optional[AwareDatetime] = None,
                      number: Optional[str] = Query(None, max_length=100),
                      limit: int = Query(100, ge=1, le=m.MAX_LIMIT),
                      cursor: Optional[str] = Query(None, max_length=200)):
        """The campaign's attempts in id order, `limit` a page; `since`: placed at or after
        (ISO 8601 with an offset); `number`: in any form the CLI accepts (the campaign's
        region)."""
        row, cfg, filters = attempt_filters(name, outcome, since, number)
        after = m.decode_cursor(cursor, int) if cursor else 0
        rows = numbers.attempt_page(row.id, after, limit + 1, **filters)
        more = len(rows) > limit
        rows = rows[:limit]
        zone = cfg.timezone
        return {"attempts": [_attempt_json(r, zone) for r in rows],
                "next_cursor": m.encode_cursor(rows[-1][0]) if more else None}

    @app.get(API + "/campaigns/{name}/attempts.csv", tags=["attempts"], dependencies=guarded,
             response_class=StreamingResponse, responses={**ERRORS, 200: {
                 "content": {"text/csv": {}}, "description": "the attempts CSV"}})
    @_in_db
    def export_attempts(name: str, outcome: Optional[Outcome] = None,
                        since: Optional[AwareDatetime] = None,
                        number: Optional[str] = Query(None, max_length=100)):
        """Every attempt (or those the filters select) as `agi-campaign numbers export
        --attempts` writes them, streamed in keyset pages (constant memory), up to the last
        attempt placed when the request came."""
        row, _, filters = attempt_filters(name, outcome, since, number)
        filters["upto"] = numbers.last_attempt_id(row.id)
        return StreamingResponse(
            _csv_chunks(row.id, filters), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="%s-attempts.csv"' % name})

    def campaign_figures(name, since, until):
        row, cfg = configured_row(name)
        since, until = report.time_range(since, until, cfg.timezone, ("since", "until"))
        return report.campaign_report(row.id, cfg.timezone, since, until)

    @app.get(API + "/campaigns/{name}/report", tags=["reports"], dependencies=guarded,
             responses=ERRORS)
    @_in_db
    def campaign_report(name: str, since: Optional[str] = Query(None, max_length=64),
                        until: Optional[str] = Query(None, max_length=64)):
        """`agi-campaign report NAME --json`: attempts by outcome, answer rate, mean ring and
        talk time, calls per hour in the campaign's zone, attempts per number, opt-outs,
        numbers by status, for the attempts placed in [since, until) (ISO 8601; a date or a
        time without an offset is in the campaign's zone; either may be left out)."""
        return campaign_figures(name, since, until)

    @app.get(API + "/campaigns/{name}/report.csv", tags=["reports"], dependencies=guarded,
             response_class=PlainTextResponse, responses={**ERRORS, 200: {
                 "content": {"text/csv": {}}, "description": "the report as CSV"}})
    @_in_db
    def campaign_report_csv(name: str, since: Optional[str] = Query(None, max_length=64),
                            until: Optional[str] = Query(None, max_length=64)):
        """`agi-campaign report NAME --csv`: the same figures as `section,key,value` rows."""
        out = io.StringIO()
        report.write_csv(campaign_figures(name, since, until), out)
        return PlainTextResponse(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="%s-report.csv"' % name})

    def known():
        return list(config().dnc_lists)

    @app.get(API + "/dnc/lists", tags=["dnc"], dependencies=guarded,
             response_model=list[m.DncListInfo])
    @_in_db
    def dnc_lists():
        """The configured Do-Not-Call lists and how many numbers each holds."""
        return [{"name": name, "description": cfg.description,
                 "entries": DncEntry.select().where(DncEntry.list_name == name).count()}
                for name, cfg in config().dnc_lists.items()]

    @app.get(API + "/dnc/lists/{list_name}", tags=["dnc"], dependencies=guarded,
             response_model=m.DncEntries, responses=ERRORS)
    @_in_db
    def dnc_entries(list_name: str, limit: int = Query(100, ge=1, le=m.MAX_LIMIT),
                    cursor: Optional[str] = Query(None, max_length=200)):
        """A list's numbers in phone order, `limit` a page (`agi-campaign dnc list`)."""
        dnc.require_list(list_name, known())
        after = m.decode_cursor(cursor, str) if cursor else ""
        rows = list(itertools.islice(dnc.entries(list_name, limit + 1, after), limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return {"list": list_name,
                "entries": [{"phone": p, "added_at": show_time(at, "UTC", iso=True), "source": source}
                            for p, at, source in rows],
                "next_cursor": m.encode_cursor(rows[-1][0]) if more else None}

    def list_region(list_name, body):
        """404 for a list not configured; the region ``body``'s numbers are read in."""
        dnc.require_list(list_name, known())
        return dnc.region_for(config(), body.region, body.numbers, "region")

    @app.post(API + "/dnc/lists/{list_name}/add", tags=["dnc"], dependencies=with_json,
              response_model=m.DncAdded, responses=ERRORS)
    @_in_db
    def dnc_add(list_name: str, body: m.DncNumbers):
        """Put numbers on a list (`agi-campaign dnc add`): all valid or nothing added."""
        return dnc_add_numbers(config(), list_name, body.numbers, body.region, now(), "api")

    @app.post(API + "/dnc/lists/{list_name}/remove", tags=["dnc"], dependencies=with_json,
              response_model=m.DncRemoved, responses=ERRORS)
    @_in_db
    def dnc_remove(list_name: str, body: m.DncNumbers):
        """Take numbers off a list (`agi-campaign dnc remove`): all valid or nothing removed."""
        region = list_region(list_name, body)
        removed, not_listed = dnc.remove(list_name, body.numbers, region, known_lists=known())
        return {"list": list_name, "removed": removed, "not_listed": not_listed}

    @app.get(API + "/dnc/check", tags=["dnc"], dependencies=guarded,
             response_model=m.DncCheck, responses=ERRORS)
    @_in_db
    def dnc_check(number: str = Query(min_length=1, max_length=100),
                  region: Optional[str] = Query(None, max_length=2)):
        """The configured lists holding a number (`agi-campaign dnc check`)."""
        return dnc_check_number(config(), number, region)


def import_numbers(config, name, path, now, dry_run=False, phone_column=None, delimiter=None,
                   encoding=None):
    """An uploaded file imported into campaign ``name`` as `numbers import` does (the API's
    and the dashboard's uploads): importer.import_csv in this process (workers=0: no child
    process is forked or spawned from the threaded service; uploads are bounded by
    max_upload_bytes), then campaigns.reopen_after_import. The report as JSON (ImportResult)."""
    row, cfg = campaigns.configured_row(config, name)
    report = importer.import_csv(
        row.id, path, cfg.region, cfg.dnc_lists, now, dry_run=dry_run,
        rejects_path=None if dry_run else path + ".rejects.csv", phone_column=phone_column,
        workers=0, delimiter=delimiter, encoding=encoding, countries=cfg.countries)
    if not dry_run:
        campaigns.reopen_after_import(row, report.imported, now)
    code = report.exit_status()
    out = {key: getattr(report, key) for key in (
        "rows", "imported", "duplicates", "invalid", "dnc", "blank", "lines", "read_as",
        "dry_run", "batch_id")}
    out.update(rejected=[{"line": line, "raw": raw, "reason": reason}
                         for line, raw, reason in report.shown],
               exit_status=code, meaning=IMPORT_MEANING.get(code, ""),
               campaign_state=row.state.upper())
    return out


def dnc_add_numbers(config, list_name, raws, region, now, source):
    """`dnc add` for the API and the dashboard: 404 for a list not configured, every number
    valid or nothing added; ``region``: the one given, or dnc.region_for's default."""
    known = list(config.dnc_lists)
    dnc.require_list(list_name, known)
    region = dnc.region_for(config, region, raws, "region")
    dnc.refuse_invalid(raws, region, "dnc add %s" % list_name)
    added, already, _ = dnc.add(list_name, raws, region, now, source=source, known_lists=known)
    return {"list": list_name, "added": added, "already": already}


def dnc_check_number(config, number, region):
    """`dnc check` for the API and the dashboard: the number's E.164 form and the configured
    lists holding it."""
    where = dnc.region_for(config, region, [number], "region")
    return {"number": phone_or_error(number, where),
            "lists": dnc.check(number, where, list(config.dnc_lists))}


def phone_or_error(raw, region):
    """The E.164 form of ``raw``; PhoneError naming the ``number`` parameter."""
    try:
        return dnc.normalized(raw, region)
    except PhoneError as err:
        raise PhoneError("number: %s" % err) from None


ERRORS = {code: {"model": m.ErrorBody, "description": text} for code, text in (
    (400, "bad request: bad JSON, a bad parameter"), (401, "no or wrong bearer token"),
    (404, "unknown campaign or list"), (409, "the campaign's state does not allow it"),
    (413, "body over http.max_upload_bytes"), (415, "wrong Content-Type"),
    (422, "invalid field (the message names it)"))}
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/json": {"schema": {"$ref": "#/components/schemas/NumbersUpload"}}}}}


def main():
    """`python -m agi_campaign.api`: print the OpenAPI schema (docs/openapi.json)."""
    print(json.dumps(create_app(None).openapi(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
