"""Redis access for the tools: one client and key set from settings, and the live model."""

from __future__ import annotations

import redis

from shared.contracts.model_snapshot import ModelSnapshot
from shared.exceptions import ModelError
from shared.model_store import load_current
from shared.redis_client import make_redis
from shared.settings import Settings
from shared.state_keys import Keys

NO_MODEL_HINT = "run python -m worker bootstrap --input FILE --until DATE"


def connect(settings: Settings) -> tuple[redis.Redis, Keys]:
    """A checked client and the keys under the configured prefix."""
    return make_redis(settings.redis), Keys(settings.redis.key_prefix)


def live_model(client: redis.Redis, keys: Keys) -> ModelSnapshot:
    """The live model, or a :class:`ModelError` saying how to create one."""
    snapshot = load_current(client, keys)
    if snapshot is None:
        raise ModelError(f"no live model under Redis prefix {keys.prefix!r}: {NO_MODEL_HINT}")
    return snapshot
