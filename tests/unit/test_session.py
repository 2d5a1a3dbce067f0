"""agi_campaign.session: the cookie and CSRF values are HMACs of the token (never the token,
distinct from each other, changed by a new token), checked against the Cookie header and the
X-CSRF-Token header; the login's `next` stays on this site."""
import hashlib
import hmac

import pytest

from agi_campaign import session

TOKEN = b"dashboard-token-0123456789"


def test_session_values_are_hmacs_of_the_token_not_the_token():
    cookie, csrf = session.cookie_value(TOKEN), session.csrf_value(TOKEN)
    assert cookie == hmac.new(TOKEN, b"agi-campaign dashboard session v1",
                              hashlib.sha256).hexdigest()
    assert len(cookie) == len(csrf) == 64 and cookie != csrf
    assert TOKEN.decode() not in cookie + csrf
    other = TOKEN + b"x"
    assert session.cookie_value(other) != cookie and session.csrf_value(other) != csrf


def test_session_cookie_header_is_checked():
    good = "%s=%s" % (session.COOKIE, session.cookie_value(TOKEN))
    assert session.cookie_matches(good, TOKEN)
    assert session.cookie_matches("a=1; " + good + "; b=2", TOKEN)
    for bad in (None, "", "a=1", "%s=" % session.COOKIE,
                "%s=%s" % (session.COOKIE, TOKEN.decode()),
                "%s=%s" % (session.COOKIE, session.csrf_value(TOKEN)),
                "%s=%s" % (session.COOKIE, session.cookie_value(b"another-token-000000")),
                "x%s=%s" % (session.COOKIE, session.cookie_value(TOKEN))):
        assert not session.cookie_matches(bad, TOKEN), bad
    assert not session.cookie_matches(good, None)


def test_session_csrf_header_is_checked():
    assert session.csrf_matches(session.csrf_value(TOKEN), TOKEN)
    for bad in (None, "", session.cookie_value(TOKEN), TOKEN.decode(),
                session.csrf_value(b"another-token-000000")):
        assert not session.csrf_matches(bad, TOKEN)
    assert not session.csrf_matches(session.csrf_value(TOKEN), None)


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
