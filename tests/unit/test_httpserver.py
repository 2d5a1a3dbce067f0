"""agi_campaign.httpserver: a taken port is a StartupError naming it, before any thread starts;
a started server answers and stops within its bound."""
import socket

import httpx
import pytest

from agi_campaign.errors import StartupError
from agi_campaign.httpserver import HttpServer


async def _hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_httpserver_taken_port_is_a_startup_error_naming_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = HttpServer(_hello, "127.0.0.1", port)
        with pytest.raises(StartupError) as err:
            server.start()
    assert str(err.value).startswith("http: cannot listen on 127.0.0.1:%d: " % port)
    assert "set http.port in the config" in str(err.value)


def test_httpserver_serves_then_stops():
    server = HttpServer(_hello, "127.0.0.1", 0)
    server.start()
    port = server.address[1]
    assert httpx.get("http://127.0.0.1:%d/" % port, timeout=10).text == "hello"
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://127.0.0.1:%d/" % port, timeout=2)
