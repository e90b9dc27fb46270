"""Model snapshots in Redis and on disk: immutable versions, one atomic pointer.

Why here (shared): the bootstrapper installs the first model and the worker reads
it, and later installs re-fitted versions the same way.

* ``model:v{n}`` is written once (SET NX) and never overwritten.
* ``model:current`` switches in the same MULTI/EXEC as ``model:stats`` is reset to
  the new model's per-segment sums and counts (fields of :mod:`shared.state.model_stats`),
  so a reader never pairs a model with another model's statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import redis

from shared.atomic_file import write_text_atomically
from shared.contracts.model_snapshot import ModelSnapshot
from shared.exceptions import LiveModelExistsError, ModelError
from shared.state.keys import Keys
from shared.state.model_stats import Statistics


def current_version(client: redis.Redis, keys: Keys) -> int | None:
    """The live model's version, or None before the first bootstrap."""
    value = client.get(keys.model_current)
    return None if value is None else int(value)


def load_version(client: redis.Redis, keys: Keys, version: int) -> ModelSnapshot:
    text = client.get(keys.model(version))
    if text is None:
        raise ModelError(f"model:current points at v{version} but {keys.model(version)} does not exist")
    return ModelSnapshot.model_validate_json(text)


def load_current(client: redis.Redis, keys: Keys) -> ModelSnapshot | None:
    """The live model, or None before the first bootstrap."""
    version = current_version(client, keys)
    return None if version is None else load_version(client, keys, version)


NO_MODEL_HINT = "run python -m worker bootstrap --input FILE --until DATE"


def require_current(client: redis.Redis, keys: Keys) -> ModelSnapshot:
    """The live model, or a :class:`ModelError` saying how to create one."""
    snapshot = load_current(client, keys)
    if snapshot is None:
        raise ModelError(f"no live model under Redis prefix {keys.prefix!r}: {NO_MODEL_HINT}")
    return snapshot


def write_version(client: redis.Redis, keys: Keys, snapshot: ModelSnapshot) -> None:
    """Store ``model:v{n}`` once; writing the identical JSON again is a no-op, anything else an error."""
    text = snapshot.model_dump_json()
    if not client.set(keys.model(snapshot.version), text, nx=True) and client.get(keys.model(snapshot.version)) != text:
        raise ModelError(f"{keys.model(snapshot.version)} already holds another model; versions are immutable")


def activate(
    client: redis.Redis,
    keys: Keys,
    snapshot: ModelSnapshot,
    stats: Statistics,
    also: Mapping[str, str] | None = None,
) -> None:
    """Make ``snapshot`` (already written) live with ``stats`` as its ``{model}:stats``, atomically.

    ``also`` are further ``{model}`` string keys set in the same transaction (e.g. the bootstrap cutoff).
    """
    with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.model_current, str(snapshot.version))
        pipe.delete(keys.model_stats)
        pipe.hset(keys.model_stats, mapping=stats.to_mapping(segment.id for segment in snapshot.segments))
        for key, value in (also or {}).items():
            pipe.set(key, value)
        pipe.execute()


def write_file(snapshot: ModelSnapshot, path: Path) -> None:
    """Write the snapshot JSON atomically (temp file in the same directory, then rename)."""
    write_text_atomically(path, snapshot.model_dump_json(indent=2))


def refuse_live(live: ModelSnapshot | None, force: bool) -> None:
    """Raise unless there is no live model or the caller explicitly replaces it."""
    if live is not None and not force:
        raise LiveModelExistsError(
            f"model v{live.version} (data {live.data_fingerprint[:12]}) is live in Redis; pass --force to replace it"
        )
