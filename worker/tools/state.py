"""Redis access for the tools: one client and key set from settings."""

from __future__ import annotations

import redis

from shared.redis_client import make_redis
from shared.settings import Settings
from shared.state_keys import Keys


def connect(settings: Settings) -> tuple[redis.Redis, Keys]:
    """A checked client and the keys under the configured prefix."""
    return make_redis(settings.redis), Keys(settings.redis.key_prefix)
