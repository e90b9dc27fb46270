"""Redis client factory: AUTH and TLS from settings, keys under one prefix."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from shared.exceptions import ServiceUnavailableError
from shared.settings import RedisSettings, Settings
from shared.state.keys import Keys


def _options(settings: RedisSettings) -> dict[str, Any]:
    """Client options from settings: replies decoded to ``str``, AUTH and TLS."""
    options: dict[str, Any] = {"decode_responses": True, "socket_timeout": settings.socket_timeout_s}
    if settings.username:
        options["username"] = settings.username
    if settings.password:
        options["password"] = settings.password.get_secret_value()
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, name)
        if value is not None:
            options[name] = str(value)
    return options


def make_redis(settings: RedisSettings, check: bool = True) -> redis.Redis:
    """A client with replies decoded to ``str``; pings first unless ``check=False``."""
    client = redis.Redis.from_url(settings.url, **_options(settings))
    if check:
        try:
            client.ping()
        except redis.exceptions.ConnectionError as exc:
            raise ServiceUnavailableError(
                f"Redis does not answer at {settings.url} ({exc}); start it or set SEG_REDIS__URL"
            ) from exc
    return client


def make_async_redis(settings: RedisSettings, connect_timeout_s: float = 2.0) -> redis.asyncio.Redis:
    """An asyncio client with the same options (for the API); it connects on first use."""
    return redis.asyncio.Redis.from_url(settings.url, socket_connect_timeout=connect_timeout_s, **_options(settings))


def connect(settings: Settings) -> tuple[redis.Redis, Keys]:
    """A checked client and the keys under the configured prefix: how tools and services reach the state."""
    return make_redis(settings.redis), Keys(settings.redis.key_prefix)
