"""Database URLs: strict parsing, and showing them without the password (pure: no I/O).

`parse_postgres_url` (config validates database.url with it, db builds the connection from
it): postgresql:// or postgres://, an optional user[:password]@, a host (name, IPv4 or [IPv6]; empty:
127.0.0.1), an optional :port 1..65535, a required /dbname, optional ?name=value&... parameters
from PG_URL_PARAMS (given to the driver; never password). The user info is everything up to the
LAST '@'. A password that is not percent-encoded cannot be split unambiguously, so it is refused,
not guessed: a '/', '?', '#', '@', space or control character in the user info, a '%' not
starting a %XX escape, a non-numeric port or anything else that does not fit is refused
(ValueError, which config turns into a ConfigError for database.url) that shows the URL through `mask_url` (the user info as '***', or nothing after
the scheme when no '@' locates it) and says to percent-encode the password (/ %2F, # %23, ? %3F,
@ %40, : %3A, % %25, space %20) or to name an environment variable holding it in
database.password_env. An unencoded ':' in the password is unambiguous (the first ':' ends the
user) and accepted. Every URL shown goes through `mask_url`; driver messages built into our own
go through `hide_password`.
"""
import re
import urllib.parse
from typing import NamedTuple

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
POSTGRES_URL_HINT = ("write it as postgresql://user:password@host:5432/dbname; percent-encode "
                     "reserved characters in the password (/ as %2F, # as %23, ? as %3F, @ as %40, "
                     ": as %3A, % as %25, a space as %20) or put the password in an environment "
                     "variable named by database.password_env")
# ?name=value parameters passed to the driver (libpq); the others are refused, password included.
PG_URL_PARAMS = ("application_name", "connect_timeout", "options", "sslmode", "sslrootcert",
                 "sslcert", "sslkey", "sslcrl", "target_session_attrs", "gssencmode",
                 "channel_binding", "keepalives", "keepalives_idle", "keepalives_interval",
                 "keepalives_count")
_NOT_IN_USERINFO = re.compile(r"[/?#@\s\x00-\x1f\x7f]")
_NOT_AFTER_USERINFO = re.compile(r"[#\s\x00-\x1f\x7f]")


class PostgresUrl(NamedTuple):
    user: str | None
    password: str | None
    host: str
    port: int
    dbname: str
    params: tuple                     # (name, value) pairs, names from PG_URL_PARAMS


def _split(url):
    """(scheme and '//', user info, '@' or '', the rest): the user info runs to the LAST '@'."""
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:(?://)?", url)
    prefix = scheme.group(0) if scheme else ""
    userinfo, at, location = url[len(prefix):].rpartition("@")
    return prefix, userinfo, at, location


def parse_postgres_url(url) -> PostgresUrl:
    """Split a postgresql:// URL strictly (see the module docstring), percent-decoding its parts.

    Raises ValueError whose text names the faulty part but quotes nothing of the URL.
    """
    if not url.startswith(POSTGRES_SCHEMES):
        raise ValueError("it must start with postgresql:// or postgres://")
    _, userinfo, at, location = _split(url)
    user = password = None
    if at:
        if _NOT_IN_USERINFO.search(userinfo):
            raise ValueError("the user name or password contains a character that must be "
                             "percent-encoded: / ? # @, a space or a control character")
        raw_user, colon, raw_password = userinfo.partition(":")
        user = _unquote(raw_user, "the user name") or None
        password = (_unquote(raw_password, "the password") or None) if colon else None
    if _NOT_AFTER_USERINFO.search(location):
        raise ValueError("the host, port, database name or parameters contain '#', a space or a "
                         "control character")
    hostport, slash, tail = location.partition("/")
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]*)(?::(.*))?", hostport)
    if match is None:
        raise ValueError("the host must be a host name or an IP address ([IPv6] in brackets), "
                         "then an optional :port")
    port = 5432
    if match.group(2) is not None:
        if not re.fullmatch(r"[0-9]{1,5}", match.group(2)) or not 0 < int(match.group(2)) < 65536:
            raise ValueError("the port must be a number 1..65535")
        port = int(match.group(2))
    raw_dbname, _, query = tail.partition("?")
    if not slash or not raw_dbname:
        raise ValueError("it names no database, end it with /dbname")
    if "/" in raw_dbname:
        raise ValueError("the database name contains '/', write it as %2F")
    params = []
    for item in filter(None, query.split("&")):
        name, equals, value = item.partition("=")
        if not equals:
            raise ValueError("the parameters after '?' must be name=value pairs joined by &")
        if name not in PG_URL_PARAMS:
            shown = " %s" % name if re.fullmatch(r"[a-z_]{1,40}", name) else ""
            raise ValueError("unsupported parameter%s after '?', the supported ones are %s "
                             "(a password goes before the '@' or into database.password_env)"
                             % (shown, ", ".join(PG_URL_PARAMS)))
        params.append((name, _unquote(value, "the parameter " + name)))
    return PostgresUrl(user, password, match.group(1).strip("[]") or "127.0.0.1", port,
                       _unquote(raw_dbname, "the database name"), tuple(params))


def _unquote(text, what):
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise ValueError("%s contains a '%%' that does not start a %%XX escape, write %% as %%25"
                         % what)
    try:
        value = urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("%s has %%XX escapes that are not UTF-8" % what) from None
    if "\0" in value:
        raise ValueError("%s contains %%00 (a NUL character)" % what)
    return value


def mask_url(url):
    """The URL as it may be shown in output, logs and messages: no part of a password in it.

    sqlite: URLs have no password and are shown as they are. Otherwise the user info is
    everything between the scheme and the LAST '@': a well-formed one keeps the user name and
    shows the password as '***' (user:***@), any other (a '/', '?', '#', space... in it) becomes
    '***' as a whole; a password= parameter shows as '***'. A URL without '@' is shown only when
    it is a valid postgresql:// URL (then it has no password); otherwise only its scheme is.
    """
    if url.startswith("sqlite:"):
        return url
    prefix, userinfo, at, location = _split(url)
    location = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", location)
    if at:
        user, colon, _ = userinfo.partition(":")
        if prefix.endswith("//") and not _NOT_IN_USERINFO.search(userinfo):
            return "%s%s%s@%s" % (prefix, user, ":***" if colon else "", location)
        return "%s***@%s" % (prefix, location)
    if url.startswith(POSTGRES_SCHEMES):
        try:
            parse_postgres_url(url)
            return prefix + location
        except ValueError:
            pass
    return prefix + "***"


def hide_password(text, url):
    """`text` (a driver's message) with the URL's password, in every form it may take, as ***.

    The message is built from connection parameters by libpq or psycopg2, which could echo them;
    the password is replaced as written in the URL, decoded, and escaped as in a libpq DSN. A
    password that is part of another word (the host name...) masks that word's part too.
    """
    if not url.startswith(POSTGRES_SCHEMES):
        return text
    _, userinfo, at, _ = _split(url)
    raw = userinfo.partition(":")[2] if at else ""
    forms = {raw, urllib.parse.unquote(raw, errors="replace")}
    forms |= {form.replace("\\", "\\\\").replace("'", "\\'") for form in forms}
    for form in sorted(forms - {""}, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def with_password(url, password):
    """A postgresql:// `url` (user, no password) with `password` percent-encoded into it."""
    prefix, userinfo, _, location = _split(url)
    return "%s%s:%s@%s" % (prefix, userinfo.partition(":")[0],
                           urllib.parse.quote(password, safe=""), location)
