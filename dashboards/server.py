"""`kernel-search dashboard`: the report page served over HTTP, rebuilt from the database per request.

Bound to 127.0.0.1 only: the page shows fingerprints and timings of the machine, and the stdlib
server is not made to face a network. Use an SSH tunnel to look from elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
log = logging.getLogger(__name__)


def make_server(build: Callable[[], str], port: int = 8765) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1:`port` (0: any free port) answering GET / with build()'s page.
    Call serve_forever() on it; server_address[1] is the port it got."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404, "only / is served")
                return
            try:
                body, status = build().encode("utf-8"), 200
            except Exception as exc:
                log.exception("building the report failed")
                body, status = f"error: {type(exc).__name__}: {exc}\n".encode(), 500
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            log.info("%s %s", self.address_string(), format % args)

    return ThreadingHTTPServer((HOST, port), Handler)
