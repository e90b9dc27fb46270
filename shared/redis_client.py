"""Redis client factory: AUTH and TLS from settings, keys under one prefix."""

from __future__ import annotations

from typing import Any

import redis

from shared.exceptions import ServiceUnavailableError
from shared.settings import RedisSettings, Settings
from shared.state.keys import Keys


def make_redis(settings: RedisSettings, check: bool = True) -> redis.Redis:
    """A client with replies decoded to ``str``; pings first unless ``check=False``."""
    options: dict[str, Any] = {"decode_responses": True, "socket_timeout": settings.socket_timeout_s}
    if settings.username:
        options["username"] = settings.username
    if settings.password:
        options["password"] = settings.password.get_secret_value()
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, name)
        if value is not None:
            options[name] = str(value)
    client = redis.Redis.from_url(settings.url, **options)
    if check:
        try:
            client.ping()
        except redis.exceptions.ConnectionError as exc:
            raise ServiceUnavailableError(
                f"Redis does not answer at {settings.url} ({exc}); start it or set SEG_REDIS__URL"
            ) from exc
    return client


def connect(settings: Settings) -> tuple[redis.Redis, Keys]:
    """A checked client and the keys under the configured prefix: how tools and services reach the state."""
    return make_redis(settings.redis), Keys(settings.redis.key_prefix)
