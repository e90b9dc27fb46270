"""Redis client factory: AUTH and TLS from settings, keys under one prefix.

Errors say what to fix: a refused password names the setting that holds it
(``SEG_REDIS__URL`` or ``SEG_REDIS__PASSWORD``), an unreachable server names
``SEG_REDIS__URL``; the URL in a message never shows its password.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from shared.exceptions import AuthenticationFailedError, ServiceUnavailableError
from shared.redaction import has_credentials, redact, redact_url
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
    """A client with replies decoded to ``str``; pings first unless ``check=False``.

    Raises :class:`AuthenticationFailedError` when Redis refuses the credentials
    and :class:`ServiceUnavailableError` when it does not answer.
    """
    options = _options(settings)
    client: redis.Redis
    if settings.cluster:
        # Every client of ours works on a cluster: the keys of one partition (or of the model, or
        # of the drift monitor) share a hash tag, and every script declares the keys it touches.
        client = redis.RedisCluster.from_url(settings.url, **options)
    else:
        client = redis.Redis.from_url(settings.url, **options)
    if check:
        try:
            client.ping()
        except redis.exceptions.AuthenticationError as exc:
            raise authentication_failed(settings, exc) from exc
        except (redis.exceptions.ConnectionError, redis.exceptions.RedisClusterException) as exc:
            raise ServiceUnavailableError(
                f"Redis does not answer at {redact_url(settings.url)} ({redact(str(exc))}); "
                "start it or set SEG_REDIS__URL"
            ) from exc
    return client


def authentication_failed(settings: RedisSettings, exc: Exception) -> AuthenticationFailedError:
    """The error for a refused AUTH, naming where the credentials came from (never what they are)."""
    if settings.password or settings.username:
        fix = "fix SEG_REDIS__PASSWORD" + (" (and SEG_REDIS__USERNAME)" if settings.username else "")
    elif has_credentials(settings.url):
        fix = "fix the user name or password in SEG_REDIS__URL (redis://[user]:password@host:port/db)"
    else:
        fix = "this Redis requires a password: set SEG_REDIS__PASSWORD (and SEG_REDIS__USERNAME for an ACL user)"
    return AuthenticationFailedError(
        f"Redis at {redact_url(settings.url)}: authentication failed ({redact(str(exc))}); {fix}"
    )


def make_async_redis(settings: RedisSettings, connect_timeout_s: float = 2.0) -> redis.asyncio.Redis:
    """An asyncio client with the same options (for the API); it connects on first use."""
    options = _options(settings) | {"socket_connect_timeout": connect_timeout_s}
    if settings.cluster:
        return redis.asyncio.RedisCluster.from_url(settings.url, **options)
    return redis.asyncio.Redis.from_url(settings.url, **options)


def connect(settings: Settings) -> tuple[redis.Redis, Keys]:
    """A checked client and the keys under the configured prefix: how tools and services reach the state."""
    return make_redis(settings.redis), Keys(settings.redis.key_prefix)
