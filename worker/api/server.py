"""Serving the API with uvicorn: one process, one event loop."""

from __future__ import annotations

import logging

import uvicorn

from shared.settings import Settings
from worker.api.app import create_app
from worker.api.settings import ApiSettings

log = logging.getLogger("worker.api")


def serve(settings: Settings, options: ApiSettings) -> None:
    """Serve until SIGTERM or Ctrl-C (uvicorn finishes open requests first)."""
    auth = "bearer token required" if options.auth_required else "no auth (loopback or SEG_API_AUTH=off)"
    log.info("API and dashboard on http://%s:%d/ (%s)", options.host, options.port, auth)
    uvicorn.run(
        create_app(settings, options),
        host=options.host,
        port=options.port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
