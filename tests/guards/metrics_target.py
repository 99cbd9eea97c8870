"""A tiny scrape target whose gauges the tests set over HTTP (run as a separate process).

``GET /metrics`` exposes ``gameday_test_value{name=...}``; ``GET /set?name=a&value=3`` sets a
gauge, and ``&age=10`` pins its sample timestamp 10 s in the past (a frozen exporter).
"""

from __future__ import annotations

import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VALUES: dict[str, tuple[float, int | None]] = {}


class Handler(BaseHTTPRequestHandler):
    """Serves the gauges and the control endpoint."""

    def do_GET(self) -> None:
        """Answer /metrics or /set."""
        url = urllib.parse.urlparse(self.path)
        if url.path == "/set":
            query = urllib.parse.parse_qs(url.query)
            age = float(query.get("age", ["0"])[0])
            stamp = int((time.time() - age) * 1000) if age else None
            VALUES[query["name"][0]] = (float(query["value"][0]), stamp)
            body = b"ok\n"
        elif url.path == "/metrics":
            lines = ["# TYPE gameday_test_value gauge"]
            for name, (value, stamp) in sorted(VALUES.items()):
                suffix = f" {stamp}" if stamp is not None else ""
                lines.append(f'gameday_test_value{{name="{name}"}} {value!r}{suffix}')
            body = ("\n".join(lines) + "\n").encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
