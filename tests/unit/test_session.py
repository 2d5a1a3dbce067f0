"""agi_campaign.session: the cookie and CSRF values are HMACs of the token and the login's
issue time (never the token, distinct from each other, changed by a new token or login), the
cookie expires after MAX_AGE_S, the CSRF header is checked against the cookie; the login's
`next` stays on this site."""
import hashlib
import hmac

import pytest

from agi_campaign import session

TOKEN = b"dashboard-token-0123456789"


NOW = 1_800_000_000


def header(value):
    return "%s=%s" % (session.COOKIE, value)


def test_session_values_are_hmacs_of_the_token_and_issue_time_not_the_token():
    cookie, csrf = session.cookie_value(TOKEN, NOW), session.csrf_value(TOKEN, NOW)
    assert cookie == "%d.%s" % (NOW, hmac.new(TOKEN, b"agi-campaign dashboard session v2|%d"
                                              % NOW, hashlib.sha256).hexdigest())
    assert len(csrf) == 64 and csrf not in cookie
    assert TOKEN.decode() not in cookie + csrf
    other = TOKEN + b"x"
    assert session.cookie_value(other, NOW) != cookie and session.csrf_value(other, NOW) != csrf
    assert session.csrf_value(TOKEN, NOW + 1) != csrf       # a new login, a new CSRF value


def test_session_cookie_header_is_checked_and_expires():
    good = header(session.cookie_value(TOKEN, NOW))
    assert session.session_issued(good, TOKEN, NOW) == NOW
    assert session.session_issued("a=1; " + good + "; b=2", TOKEN, NOW + 5) == NOW
    assert session.session_issued(good, TOKEN, NOW + session.MAX_AGE_S) == NOW
    assert session.session_issued(good, TOKEN, NOW + session.MAX_AGE_S + 1) is None  # expired
    assert session.session_issued(good, TOKEN, NOW - session.SKEW_S - 1) is None     # future
    mac = session.cookie_value(TOKEN, NOW).partition(".")[2]
    for bad in (None, "", "a=1", header(""), header(TOKEN.decode()),
                header(session.csrf_value(TOKEN, NOW)),
                header(session.cookie_value(b"another-token-000000", NOW)),
                header("%d.%s" % (NOW + 1, mac)),            # the issue time moved
                header("%d.%s" % (NOW, mac[:-1])), header("-5." + mac),
                header("9" * 40 + "." + mac),
                "x" + header(session.cookie_value(TOKEN, NOW))):
        assert session.session_issued(bad, TOKEN, NOW) is None, bad
    assert session.session_issued(good, None, NOW) is None


def test_session_csrf_header_is_checked_against_the_cookie():
    cookie = header(session.cookie_value(TOKEN, NOW))
    csrf = session.csrf_value(TOKEN, NOW)
    assert session.csrf_matches(csrf, cookie, TOKEN, NOW)
    assert session.page_csrf(cookie, TOKEN, NOW) == csrf
    for bad in (None, "", session.cookie_value(TOKEN, NOW), TOKEN.decode(),
                session.csrf_value(TOKEN, NOW - 1),           # another login's
                session.csrf_value(b"another-token-000000", NOW)):
        assert not session.csrf_matches(bad, cookie, TOKEN, NOW)
    assert not session.csrf_matches(csrf, cookie, None, NOW)
    assert not session.csrf_matches(csrf, "", TOKEN, NOW)          # no session, no CSRF
    assert not session.csrf_matches(csrf, cookie, TOKEN, NOW + session.MAX_AGE_S + 1)
    assert session.page_csrf("", TOKEN, NOW) == ""                 # the login page


def test_session_token_given_compares_the_login_text():
    assert session.token_given(TOKEN.decode(), TOKEN)
    assert not session.token_given(TOKEN.decode()[:-1], TOKEN)
    assert not session.token_given("", TOKEN) and not session.token_given(None, TOKEN)
    assert not session.token_given(TOKEN.decode(), None)


@pytest.mark.parametrize("target, expected", [
    ("/campaigns/c1", "/campaigns/c1"), ("/", "/"), ("", "/"), (None, "/"),
    ("//evil.example/x", "/"), ("/\\evil.example", "/"), ("https://evil.example/", "/"),
    ("javascript:alert(1)", "/"), ("/a\r\nSet-Cookie: x=1", "/"), ("campaigns", "/")])
def test_session_safe_next_stays_on_this_site(target, expected):
    assert session.safe_next(target) == expected
