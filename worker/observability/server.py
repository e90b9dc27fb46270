"""One small HTTP server per worker: ``/metrics``, ``/healthz`` and ``/readyz``.

Why not ``prometheus_client.start_http_server``: it serves metrics only. The
standard library's threading server in a daemon thread serves all three on one
port and never blocks the consume loop.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.exceptions import ServiceUnavailableError
from worker.observability.health import Health

log = logging.getLogger("worker.http")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self.server.registry))
        elif path in ("/healthz", "/readyz"):
            health = self.server.health
            ok = health.live() if path == "/healthz" else health.ready()
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._reply(status, "application/json", json.dumps(health.status()).encode())
        else:
            self._reply(HTTPStatus.NOT_FOUND, "text/plain", b"try /metrics, /healthz or /readyz\n")

    def _reply(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health) -> None:
        self.registry = registry
        self.health = health
        super().__init__((host, port), _Handler)


class ObservabilityServer:
    """Serves a worker's registry and health until :meth:`close`.

    On ``host`` 127.0.0.1 by default: only this machine reads the endpoints unless
    the operator opens them (``SEG_WORKER_METRICS_HOST=0.0.0.0`` in a container).
    """

    def __init__(self, port: int, registry: CollectorRegistry, health: Health, host: str = "127.0.0.1") -> None:
        try:
            self._server = _Server(host, port, registry, health)
        except OSError as exc:
            raise ServiceUnavailableError(
                f"cannot serve metrics on {host}:{port} ({exc}); choose another port or address "
                "(SEG_WORKER_METRICS_PORT and _HOST, or SEG_MONITOR_METRICS_PORT and _HOST for the drift monitor)"
            ) from exc
        self._thread = threading.Thread(target=self._server.serve_forever, name="worker-http", daemon=True)
        self._thread.start()
        log.info(
            "metrics and health on %s:%d: /metrics /healthz /readyz",
            host,
            self.port,
            extra={"host": host, "port": self.port},
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
