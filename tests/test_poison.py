"""A corpus of poison records mixed into a real stream: each is dead-lettered once, nothing else changes.

The same simulated stream runs twice through a real worker: once clean, once with
every kind of unusable record injected mid-stream (not JSON, 1 MB of garbage,
NaN / Infinity / 1e400 / negative prices, a 40-digit quantity, a time zone, an
epoch number, year 9999, a date in 2099, an empty customer, an extra or a missing
field, a line on the wrong partition, a line too old to be deduplicated). The
poisoned run's state equals the clean run's, key by key (only the offsets differ:
the poison takes offsets too), the model statistics stay finite, and each poison
record is on the dead-letter topic exactly once, with its reason.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import orjson
import redis

from harness.compare import differences, state
from shared.kafka_clients import read_to_end
from shared.settings import Settings, isolated_settings
from shared.state.keys import Keys
from tests.pipeline import SIM_CUTOFF, bootstrap, replay_file, run_worker, simulated
from tests.poison_corpus import poison_corpus, send_poison

STREAM_DAYS = 30
SPLIT = SIM_CUTOFF + timedelta(days=20)


def _run(settings: Settings, client: redis.Redis, source: Path, tmp_path: Path, poison: bool) -> dict[str, object]:
    bootstrap(settings, client, source, SIM_CUTOFF, tmp_path, k=4)
    replay_file(settings, source, SIM_CUTOFF, tmp_path, end=SPLIT)
    if poison:
        send_poison(settings, poison_corpus(settings.topics.partitions, SPLIT))
    replay_file(settings, source, SPLIT, tmp_path)
    run_worker(settings, batch_max_records=2_000)
    return state(client, Keys(settings.redis.key_prefix), settings.topics.partitions)


def test_each_poison_record_is_dead_lettered_once_and_changes_nothing_else(
    kafka_bootstrap: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    source = simulated(tmp_path, STREAM_DAYS)
    clean = isolated_settings(kafka_bootstrap, redis_url, "clean")
    poisoned = isolated_settings(kafka_bootstrap, redis_url, "poisoned")
    (tmp_path / "clean").mkdir()
    (tmp_path / "poisoned").mkdir()
    try:
        expected = _run(clean, redis_client, source, tmp_path / "clean", poison=False)
        got = _run(poisoned, redis_client, source, tmp_path / "poisoned", poison=True)
        differ = differences(expected, got, clean.redis.key_prefix, poisoned.redis.key_prefix)
        assert [key for key in differ if not key.endswith(":checkpoint")] == []
        keys = Keys(poisoned.redis.key_prefix)
        for partition in range(poisoned.topics.partitions):
            for field, value in redis_client.hgetall(keys.stats(partition)).items():
                if field.startswith(("count:", "sum:")):
                    assert math.isfinite(float(value)), (partition, field)
        letters = [orjson.loads(record.value) for record in read_to_end(poisoned.kafka, poisoned.topics.dead_letter)]
        by_position: dict[str, list[dict]] = {}
        for letter in letters:
            by_position.setdefault(letter["position"], []).append(letter)
        assert all(len(copies) == 1 for copies in by_position.values()), "a dead letter was sent twice"
        corpus = poison_corpus(poisoned.topics.partitions, SPLIT)
        assert len(letters) == len(corpus)
        reasons = sorted(letter["reason"] for letter in letters)
        assert reasons == sorted(poison.reason for poison in corpus)
        big = next(letter for letter in letters if len(letter["raw"]) > 60_000)
        assert "truncated: 1,000,000 bytes" in big["raw"]
        assert all(letter["error"] and letter["stage"] in ("decode", "apply") for letter in letters)
    finally:
        for settings in (clean, poisoned):
            for key in redis_client.scan_iter(match=settings.redis.key_prefix + "*", count=1000):
                redis_client.delete(key)
