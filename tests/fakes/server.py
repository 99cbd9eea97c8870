"""The HTTP plumbing the fakes share: serve a handler on 127.0.0.1 from a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    """One fake's server: a free port on 127.0.0.1, requests handled by ``handler`` whose
    class attribute ``fake`` is the fake object."""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    def start(self, handler: type[BaseHTTPRequestHandler], fake: Any, name: str) -> None:
        """Serve from a daemon thread."""
        bound = type("Handler", (handler,), {"fake": fake})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), bound)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                         name=name).start()

    def stop(self) -> None:
        """Stop serving (safe to call twice)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"
