"""``autoprune report --serve``: the report on 127.0.0.1, rebuilt from the storage on every request.

A reload in the browser therefore shows the trials a running study has added since. Only
the loopback address is served: the page shows paths and storage URLs.
"""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

from ..exceptions import AutopruneError
from .write import report_html

__all__ = ["ReportServer"]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_HTTPServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] not in ("/", "/index.html", "/report.html"):
            self._send(404, "text/plain; charset=utf-8", b"not found; the report is at /\n")
            return
        try:
            body = report_html(self.server.run_dir).encode()
        except AutopruneError as e:
            self._send(500, "text/plain; charset=utf-8", f"cannot build the report: {e}\n".encode())
            return
        self._send(200, "text/html; charset=utf-8", body)

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: the CLI prints the URL once
        pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    run_dir: Path


class ReportServer:
    """Serves the report of ``run_dir`` at ``http://127.0.0.1:PORT/``.

    Args:
        run_dir: The run directory.
        port: TCP port; 0 picks a free one.
    """

    host = "127.0.0.1"

    def __init__(self, run_dir: str | os.PathLike, port: int = 8000) -> None:
        self.run_dir = Path(run_dir)
        self.port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        port = self._httpd.server_address[1] if self._httpd else self.port
        return f"http://{self.host}:{port}/"

    def bind(self) -> None:
        """Open the listening socket (raises OSError when the port is taken)."""
        self._httpd = _HTTPServer((self.host, self.port), _Handler)
        self._httpd.run_dir = self.run_dir

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (or Ctrl-C in the caller)."""
        if self._httpd is None:
            self.bind()
        self._httpd.serve_forever()  # type: ignore[union-attr]

    def start(self) -> None:
        """Serve from a background thread (for tests and notebooks)."""
        if self._httpd is None:
            self.bind()
        self._thread = threading.Thread(target=self.serve_forever, name="autoprune-report", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(5)
            self._httpd.server_close()
            self._httpd = None
