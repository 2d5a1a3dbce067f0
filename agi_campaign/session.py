"""The dashboard's login session: values derived from the HTTP token, checked in constant time
(no I/O, no state kept).

- The session cookie (``COOKIE``) holds ``cookie_value(token)``: HMAC-SHA256 of a fixed label
  keyed by the token, never the token itself. Nothing is stored on the server: every service
  holding the same token accepts it, and changing ``http.token_env``'s token invalidates every
  cookie at once (that is how a session is revoked). The cookie has no Max-Age (it ends with
  the browser session), is HttpOnly and SameSite=Strict; it is not Secure because the service
  speaks plain HTTP (put a TLS proxy in front of it to reach it over a network).
- The CSRF value (``csrf_value(token)``, another HMAC label) is put in each page
  (``<meta name="csrf-token">``) and must come back in the ``X-CSRF-Token`` header
  (``CSRF_HEADER``) of every state-changing request authenticated by the cookie. A bearer token
  needs none (a browser never sends it on its own).
- ``safe_next`` keeps the login's ``next`` a path on this site (no open redirect).
"""
import hashlib
import hmac

COOKIE = "agi_campaign_session"
CSRF_HEADER = "x-csrf-token"
_COOKIE_LABEL = b"agi-campaign dashboard session v1"
_CSRF_LABEL = b"agi-campaign dashboard csrf v1"


def _derive(token, label):
    return hmac.new(token, label, hashlib.sha256).hexdigest()


def cookie_value(token):
    """The session cookie's value for ``token`` (bytes)."""
    return _derive(token, _COOKIE_LABEL)


def csrf_value(token):
    """The CSRF header's value for ``token`` (bytes)."""
    return _derive(token, _CSRF_LABEL)


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


def cookie_matches(cookie_header, token):
    """True when the ``Cookie`` header carries the session cookie of ``token``."""
    return token is not None and hmac.compare_digest(
        cookie_of(cookie_header).encode(), cookie_value(token).encode())


def csrf_matches(header, token):
    """True when ``header`` (X-CSRF-Token's value) is the CSRF value of ``token``."""
    return token is not None and hmac.compare_digest(
        (header or "").strip().encode(), csrf_value(token).encode())


def safe_next(target):
    """``target`` when it is a path on this site (``/...``, not ``//host`` nor ``/\\host``,
    no scheme, no control character), else ``/``."""
    target = target or ""
    if (not target.startswith("/") or target.startswith(("//", "/\\"))
            or any(ord(c) < 32 or c == "\\" for c in target)):
        return "/"
    return target
