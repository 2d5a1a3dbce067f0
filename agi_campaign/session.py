"""The dashboard's login session: values derived from the HTTP token, checked in constant time
(no I/O, no state kept; times are passed in as Unix seconds).

- The session cookie (``COOKIE``) holds ``cookie_value(token, issued)``: ``<issued>.<mac>``,
  where ``mac`` is HMAC-SHA256 keyed by the token over a fixed label and the issue time, never
  the token itself. It is accepted for ``MAX_AGE_S`` from its issue (the browser is told the
  same Max-Age), then the browser must log in again. Nothing is stored on the server: every
  service holding the same token accepts it, and changing ``http.token_env``'s token
  invalidates every cookie at once (how a stolen cookie is revoked before it expires; "Log out"
  only removes the browser's copy). HttpOnly and SameSite=Strict; not Secure because the
  service speaks plain HTTP (put a TLS proxy in front of it to reach it over a network).
- The CSRF value (``csrf_value(token, issued)``, another HMAC label, bound to the cookie's
  issue time so it changes with every login) is put in each page of a logged-in browser
  (``<meta name="csrf-token">``; empty on the login page) and must come back in the
  ``X-CSRF-Token`` header (``CSRF_HEADER``) of every state-changing request authenticated by
  the cookie. A bearer token needs none (a browser never sends it on its own).
- ``safe_next`` keeps the login's ``next`` a path on this site (no open redirect).
"""
import hashlib
import hmac

COOKIE = "agi_campaign_session"
CSRF_HEADER = "x-csrf-token"
MAX_AGE_S = 12 * 3600
SKEW_S = 60          # an issue time this far ahead is still accepted (services' clocks differ)
_COOKIE_LABEL = b"agi-campaign dashboard session v2|"
_CSRF_LABEL = b"agi-campaign dashboard csrf v2|"


def _derive(token, label, issued):
    return hmac.new(token, label + b"%d" % issued, hashlib.sha256).hexdigest()


def cookie_value(token, issued):
    """The session cookie's value for ``token`` (bytes) issued at ``issued`` (Unix s)."""
    issued = int(issued)
    return "%d.%s" % (issued, _derive(token, _COOKIE_LABEL, issued))


def csrf_value(token, issued):
    """The CSRF header's value for the session of ``token`` issued at ``issued``."""
    return _derive(token, _CSRF_LABEL, int(issued))


def token_given(given, token):
    """True when ``given`` (the login form's text) is ``token`` (bytes), in constant time."""
    return token is not None and hmac.compare_digest((given or "").encode(), token)


def cookie_of(cookie_header):
    """The session cookie's value in a ``Cookie`` header ('' when absent)."""
    for part in (cookie_header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value.strip()
    return ""


def session_issued(cookie_header, token, now):
    """The issue time of the valid session cookie of ``token`` in a ``Cookie`` header at
    ``now`` (Unix s), or None (absent, forged, of another token, or expired)."""
    value = cookie_of(cookie_header)
    issued, _, _ = value.partition(".")
    if token is None or not issued.isdigit() or len(issued) > 12:
        return None
    issued = int(issued)
    if not -SKEW_S <= now - issued <= MAX_AGE_S:
        return None
    return issued if hmac.compare_digest(value.encode(),
                                         cookie_value(token, issued).encode()) else None


def csrf_matches(header, cookie_header, token, now):
    """True when ``header`` (X-CSRF-Token's value) is the CSRF value of the valid session
    cookie in ``cookie_header``."""
    issued = session_issued(cookie_header, token, now)
    return issued is not None and hmac.compare_digest(
        (header or "").strip().encode(), csrf_value(token, issued).encode())


def page_csrf(cookie_header, token, now):
    """The CSRF value a page shows to the browser sending ``cookie_header`` ('' without a
    valid session: the login page gives nothing away)."""
    issued = session_issued(cookie_header, token, now)
    return "" if issued is None else csrf_value(token, issued)


def safe_next(target):
    """``target`` when it is a path on this site (``/...``, not ``//host`` nor ``/\\host``,
    no scheme, no control character), else ``/``."""
    target = target or ""
    if (not target.startswith("/") or target.startswith(("//", "/\\"))
            or any(ord(c) < 32 or c == "\\" for c in target)):
        return "/"
    return target
