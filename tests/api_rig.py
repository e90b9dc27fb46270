"""The API under test: served by uvicorn in a thread of the test process, on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import uvicorn

from rig.local_services import free_port
from shared.settings import Settings
from worker.api.app import create_app
from worker.api.settings import ApiSettings

READY_TIMEOUT_S = 60.0


@contextmanager
def running_api(settings: Settings, ready: bool = True, **options: object) -> Iterator[str]:
    """Serve the API for ``settings``; yields its base URL, once ``/readyz`` answers 200 when ``ready``."""
    api = ApiSettings(port=free_port(), **options)  # type: ignore[arg-type]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, api), host=api.host, port=api.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{api.port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        while ready and requests.get(f"{url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, requests.get(f"{url}/readyz", timeout=5).json()
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def get(url: str, path: str, status: int = 200, **kwargs: object) -> Any:
    """GET ``path`` and return its JSON, asserting the status."""
    response = requests.get(url + path, timeout=30, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, (path, response.status_code, response.text[:500])
    return response.json()
