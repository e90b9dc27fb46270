"""Fit on the real window to 2011-06-01: round trips, idempotence, scores."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import redis

from shared.contracts.model_snapshot import ModelSnapshot
from shared.exceptions import LiveModelExistsError
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.model_store import load_current
from tests.pipeline import REAL_CUTOFF as UNTIL
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings
from worker.bootstrap.summary import summary

PARTITIONS = 3


Dump = dict[str, tuple[str, object]]


def dump(client: redis.Redis, prefix: str) -> Dump:
    """Every key under ``prefix`` with its type and value: the state idempotence is judged on."""
    readers = {
        "string": client.get,
        "hash": client.hgetall,
        "set": lambda key: sorted(client.smembers(key)),
    }
    return {
        key: (kind, readers[kind](key))
        for key in sorted(client.scan_iter(match=prefix + "*", count=1000))
        for kind in [client.type(key)]
    }


def popularity_shares(state: Dump, keys: Keys, snapshot: ModelSnapshot) -> set[tuple[int, int]]:
    """The (partition, segment) pairs with a popularity hash in ``state``; fails on any other products key."""
    names = {
        name: (p, segment.id)
        for segment in snapshot.segments
        for p in range(PARTITIONS)
        for name in keys.products(p, segment.id)
    }
    stray = [key for key in state if ":products:" in key and (key not in names or state[key][0] != "hash")]
    assert not stray, stray
    return {names[key] for key in state if key in names}


def test_real_window_fit_round_trips_and_is_idempotent(
    dataset: Path, settings: Settings, redis_client: redis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = Keys(settings.redis.key_prefix)
    options = BootstrapSettings(model_file=tmp_path / "model.json")
    result = run_bootstrap(dataset, UNTIL, redis_client, keys, options, partitions=PARTITIONS)
    snapshot = result.snapshot
    with capsys.disabled():
        print("\n" + summary(result))

    assert result.outcome == "installed" and snapshot.version == 1
    assert ModelSnapshot.model_validate_json(snapshot.model_dump_json()) == snapshot
    assert ModelSnapshot.model_validate_json((tmp_path / "model.json").read_text()) == snapshot
    assert load_current(redis_client, keys) == snapshot
    assert options.k_min <= snapshot.k <= options.k_max
    assert [segment.id for segment in snapshot.segments] == list(range(snapshot.k))
    assert len({segment.name for segment in snapshot.segments}) == snapshot.k
    assert sum(segment.count for segment in snapshot.segments) == snapshot.customers == len(result.features)
    assert snapshot.training_window == (datetime(2010, 12, 1, 8, 26), UNTIL)
    assert sum(redis_client.scard(keys.customers(p)) for p in range(PARTITIONS)) == result.cleaning.customers

    before = dump(redis_client, keys.prefix)
    every_share = {(p, s.id) for s in snapshot.segments for p in range(PARTITIONS)}
    assert popularity_shares(before, keys, snapshot) == every_share
    again = run_bootstrap(dataset, UNTIL, redis_client, keys, options, partitions=PARTITIONS)
    assert again.outcome == "unchanged"
    assert dump(redis_client, keys.prefix) == before
    forced = run_bootstrap(dataset, UNTIL, redis_client, keys, options, partitions=PARTITIONS, force=True)
    assert forced.outcome == "reset" and forced.snapshot == snapshot
    assert dump(redis_client, keys.prefix) == before

    other = BootstrapSettings(k=4, model_file=tmp_path / "model.json")
    with pytest.raises(LiveModelExistsError, match="--force"):
        run_bootstrap(dataset, UNTIL, redis_client, keys, other, partitions=PARTITIONS)
    replaced = run_bootstrap(dataset, UNTIL, redis_client, keys, other, partitions=PARTITIONS, force=True)
    assert replaced.outcome == "installed" and replaced.snapshot.version == 2 and replaced.snapshot.k == 4
    assert load_current(redis_client, keys) == replaced.snapshot
    assert popularity_shares(dump(redis_client, keys.prefix), keys, replaced.snapshot) == {
        (p, s.id) for s in replaced.snapshot.segments for p in range(PARTITIONS)
    }
    assert ModelSnapshot.model_validate_json(redis_client.get(keys.model(1)) or "") == snapshot
