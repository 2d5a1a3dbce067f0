"""agi_campaign.guard on a real ASGI server (uvicorn via HttpServer) and a real HTTP client: an
error no handler answered becomes a JSON 500 logged by type only, never a traceback with the
error's text (a database error's DETAIL can hold a phone number)."""
import logging

import httpx

from agi_campaign.guard import Guard
from agi_campaign.httpserver import HttpServer

TOKEN = b"guard-test-token-0123456789"


async def _failing(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/midway":     # a stream that fails after it started
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/csv")]})
        await send({"type": "http.response.body", "body": b"a,b\n", "more_body": True})
    raise RuntimeError('duplicate key (phone)=(+12025550199)')


def test_guard_turns_an_unanswered_error_into_a_json_500_without_its_text(caplog):
    caplog.set_level(logging.INFO)
    server = HttpServer(Guard(_failing, token=TOKEN, limit=1024), "127.0.0.1", 0)
    server.start()
    try:
        base = "http://127.0.0.1:%d" % server.address[1]
        headers = {"Authorization": "Bearer " + TOKEN.decode()}
        reply = httpx.get(base + "/boom", headers=headers, timeout=10)
        assert reply.status_code == 500
        assert reply.json() == {"error": "internal error (RuntimeError); the service log has "
                                         "the details"}
        try:
            cut = httpx.get(base + "/midway", headers=headers, timeout=10)
            assert cut.status_code == 200 and cut.text.startswith("a,b")
        except httpx.HTTPError:
            pass        # the stream ended early: the client may see the cut
        assert httpx.get(base + "/boom", timeout=10).status_code == 401
    finally:
        server.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["http 500 GET /boom: RuntimeError", "http 500 GET /midway: RuntimeError"]
    assert "12025550199" not in caplog.text and "Traceback" not in caplog.text
