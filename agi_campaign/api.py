"""The service's HTTP API (FastAPI): `/api/v1/...` with bearer-token auth, plus `/healthz`,
`/readyz` and `/metrics`.

`create_app(service)` builds the app around a running agi_campaign.service.Service (its config,
clock, engine, metrics). Every endpoint but the health checks asks for `Authorization: Bearer
<token>` (http.token_env); a missing or wrong token is 401, logged with the method, path and
client address, never with the token. Errors are JSON `{"error": "<message>"}` (validation
errors name the field), with the status codes of ERROR_STATUS for the project's own errors.
"""
import hmac
import logging

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from agi_campaign import __version__, health, metrics
from agi_campaign.db import database
from agi_campaign.errors import (AgiCampaignError, ConfigError, CsvImportError, NotFoundError,
                                 PhoneError, StateError, UsageError)

log = logging.getLogger(__name__)

API = "/api/v1"
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


def create_app(service):
    app = FastAPI(title="agi-campaign", version=__version__, openapi_url=API + "/openapi.json",
                  docs_url=API + "/docs", redoc_url=None)
    app.state.service = service
    token = service.config.http.token.encode()

    def authorized(request: Request):
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token):
            raise Unauthorized()

    @app.exception_handler(Unauthorized)
    def _unauthorized(request, exc):
        log.warning("http 401 %s %s from %s: %s bearer token", request.method, request.url.path,
                    request.client.host if request.client else "?",
                    "wrong" if request.headers.get("authorization") else "no")
        return JSONResponse({"error": "missing or invalid bearer token; send "
                                      "'Authorization: Bearer <token>' (http.token_env)"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    def _invalid(request, exc):
        return JSONResponse({"error": validation_message(exc.errors())}, status_code=422)

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

    @app.get(API + "/campaigns", tags=["campaigns"], dependencies=[Depends(authorized)])
    def list_campaigns():
        """Every campaign with its state, counts and the reason it is (not) dialing."""
        from agi_campaign import status

        with database.connection_context():
            return {"campaigns": status.status(service.config, service.clock.now())}

    return app


def validation_message(errors):
    """One line naming each invalid field of a request (pydantic's error list)."""
    parts = []
    for err in errors[:10]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
        parts.append("%s: %s" % (where, err.get("msg", "invalid")))
    return "invalid request: " + "; ".join(parts)
