"""The service's HTTP server: uvicorn serving an ASGI app (agi_campaign.api) in a thread of its own.

The listening socket is bound by `start()` in the caller's thread, so a port that is taken is a
StartupError naming `http.host:port` before anything else starts, not a log line from a thread.
uvicorn runs its event loop in a daemon thread (it installs no signal handlers there: the
service's own handlers stay in charge); `stop()` asks it to exit (open requests get 1 s) and
waits up to `timeout` (2 s).
Synchronous endpoints of the app run in the event loop's worker threads, so a slow database
query never stalls the other requests.
"""
import logging
import socket
import threading

import uvicorn

from agi_campaign.errors import StartupError

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(self, app, host, port):
        self.app = app
        self.host = host
        self.port = port
        self._server = None
        self._thread = None
        self._socket = None

    @property
    def address(self):
        """(host, port) actually bound (the port the OS chose when `port` was 0)."""
        return self._socket.getsockname()[:2] if self._socket else (self.host, self.port)

    def start(self, timeout=10.0):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise StartupError("http: cannot listen on %s:%s: %s; stop what uses the port or "
                               "set http.port in the config" % (self.host, self.port,
                                                               err.strerror or err)) from None
        sock.listen(128)
        sock.set_inheritable(True)
        self._socket = sock
        config = uvicorn.Config(self.app, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1,
                                server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="http", daemon=True)
        self._thread.start()
        ready = threading.Event()
        while not self._server.started and self._thread.is_alive():
            ready.wait(0.02)
            timeout -= 0.02
            if timeout <= 0:
                break
        if not self._server.started:
            self.stop()
            raise StartupError("http: the server on %s:%s did not start" % self.address)
        log.info("http listening on %s:%s", *self.address)

    def stop(self, timeout=2.0):
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
