"""The guard every HTTP request passes before FastAPI sees it (plain ASGI middleware): the
bearer token or the dashboard's session cookie (with its CSRF header), the body size, no body
on GET.

Running before FastAPI reads or parses a body, it answers a request without the token 401
before a byte of its body is read (logged with method, path and client address, never the
token), and a body over ``http.max_upload_bytes`` 413 whether it declares its length (refused
before reading) or is sent chunked (refused when the count passes the limit: the endpoint
reading it gets ``BodyTooLarge`` and writes nothing). The limit holds for every endpoint.

The dashboard's session cookie (agi_campaign.session) is accepted wherever the bearer token
is (so a browser can download the export); a state-changing request (not GET/HEAD/OPTIONS)
authenticated by the cookie alone also needs the ``X-CSRF-Token`` header (403 JSON
otherwise). A GET of a dashboard page (``pages``: exact paths, or prefixes ending in ``/``)
without credentials is sent to ``/login`` (303; an htmx request gets 401 with
``HX-Redirect: /login``) instead of the API's 401.
"""
import hmac
import json
import logging
import time

from urllib.parse import quote

from starlette.exceptions import HTTPException

from agi_campaign import session

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
NO_BODY_METHODS = ("GET", "HEAD", "DELETE", "OPTIONS")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN = "/login"
UNAUTHORIZED = ("missing or invalid bearer token; send 'Authorization: Bearer <token>' "
                "(http.token_env)")
CSRF_MISSING = ("missing or wrong X-CSRF-Token header: a request that changes something and "
                "is authenticated by the session cookie needs the page's csrf-token")


class BodyTooLarge(HTTPException):
    """A request body over the limit (answered 413 JSON by the app's HTTPException handler)."""

    def __init__(self, limit):
        super().__init__(413, "request body larger than %d bytes (http.max_upload_bytes); send "
                              "a smaller one, e.g. split the file" % limit)


def media_type(content_type):
    """``text/csv`` of ``text/csv; charset=utf-8`` (lower case; '' when absent)."""
    return (content_type or "").split(";")[0].strip().lower()


def token_matches(header, token):
    """True when ``header`` (the Authorization header's value) is ``Bearer <token>``."""
    scheme, _, value = (header or "").partition(" ")
    return (token is not None and scheme.lower() == "bearer"
            and hmac.compare_digest(value.strip().encode(), token))


def credentials(headers, token, now):
    """How a request (``headers``: lower-case names) is authenticated at ``now`` (Unix s):
    "bearer", "cookie" (the dashboard's unexpired session cookie) or None."""
    if token_matches(headers.get("authorization"), token):
        return "bearer"
    if session.session_issued(headers.get("cookie"), token, now) is not None:
        return "cookie"
    return None


def matches(path, paths):
    """True when ``path`` is one of ``paths`` or under one of them that ends in ``/`` (but
    ``/``: the root is only itself)."""
    return any(path == p or (p != "/" and p.endswith("/") and path.startswith(p))
               for p in paths)


class Guard:
    """ASGI middleware: 401 without the bearer token or the session cookie (except on
    ``open_paths``: exact paths, or prefixes ending in ``/``), 403 for a cookie request that
    changes state without the CSRF header, 303 to /login for a dashboard page (``pages``),
    400 for a body on GET/HEAD/DELETE, 413 for a body over ``limit`` bytes, a JSON 500 for an
    unexpected error. ``token``: bytes, or None to refuse every request but ``open_paths``."""

    def __init__(self, app, token, limit, open_paths=(), pages=()):
        self.app = app
        self.token = token
        self.limit = limit
        self.open_paths = tuple(open_paths)
        self.pages = tuple(pages)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", ())}
        if not matches(scope["path"], self.open_paths) and not await self._admitted(
                scope, headers, send):
            return
        declared = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _reply(send, 413, BodyTooLarge(self.limit).detail)
            return
        if scope["method"] in NO_BODY_METHODS and (chunked or declared not in (None, "0")):
            await _reply(send, 400, "%s %s takes no request body; send the parameters in the "
                                    "query string" % (scope["method"], scope["path"]))
            return
        await self._answered(scope, self._counting(receive), send)

    async def _admitted(self, scope, headers, send):
        """True when the request may go on; otherwise answers it (401, 403 or 303) and returns
        False. Logged with method, path and client address, never a credential."""
        now = time.time()
        how = credentials(headers, self.token, now)
        method, path = scope["method"], scope["path"]
        client = scope.get("client")
        if how == "bearer" or (how == "cookie" and method in SAFE_METHODS):
            return True
        if how == "cookie":
            if session.csrf_matches(headers.get(session.CSRF_HEADER), headers.get("cookie"),
                                    self.token, now):
                return True
            log.warning("http 403 %s %s from %s: %s CSRF header", method, path,
                        client[0] if client else "?",
                        "wrong" if headers.get(session.CSRF_HEADER) else "no")
            await _reply(send, 403, CSRF_MISSING)
            return False
        page = method in SAFE_METHODS and matches(path, self.pages)
        log.log(logging.INFO if page else logging.WARNING, "http %s %s %s from %s: %s",
                303 if page else 401, method, path, client[0] if client else "?",
                "wrong bearer token" if headers.get("authorization") else
                "wrong or expired session cookie" if session.cookie_of(headers.get("cookie"))
                else "no credentials")
        if page:
            if headers.get("hx-request"):
                await _reply(send, 401, UNAUTHORIZED, [(b"hx-redirect", LOGIN.encode())])
            else:
                target = LOGIN + ("" if path == "/" else "?next=" + quote(path, safe="/"))
                await _reply(send, 303, "log in first: " + LOGIN,
                             [(b"location", target.encode("latin-1"))])
            return False
        await _reply(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
        return False

    async def _answered(self, scope, receive, send):
        """Run the app; an error it did not answer becomes a JSON 500 (when no response has
        started: a stream cut short just ends), logged with its type only (a database error's
        text may hold a phone number; the traceback is at DEBUG)."""
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # boundary: every request gets an answer
            log.error("http 500 %s %s: %s", scope["method"], scope["path"], type(exc).__name__)
            log.debug("http 500 details", exc_info=True)
            if not started:
                await _reply(send, 500, "internal error (%s); the service log has the details"
                                        % type(exc).__name__)

    def _counting(self, receive):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message
        return counted


async def _reply(send, status, message, headers=()):
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
