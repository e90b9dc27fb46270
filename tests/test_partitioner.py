"""Key -> partition: the same placement as Java's and librdkafka's murmur2 partitioners."""

from __future__ import annotations

import random

import pytest

from shared.partitioner import KeyPartitioner, partition_of, partitions_of

# Apache Kafka's own reference values (UtilsTest.testMurmur2), as Java's signed ints.
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize("partitions", [1, 3, 6, 7, 100])
def test_partition_is_javas_positive_murmur2_modulo_the_count(partitions: int) -> None:
    for key, java_hash in JAVA_MURMUR2.items():
        assert partition_of(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions, key


@pytest.mark.parametrize("partitions", [1, 3, 6, 7, 100])
def test_many_keys_at_once_land_where_one_at_a_time_does(partitions: int) -> None:
    rng = random.Random(partitions)
    keys = [*JAVA_MURMUR2, "", "é€", *(str(rng.randrange(10 ** rng.randint(1, 12))) for _ in range(3_000))]
    keys += [f"guest:C{rng.randrange(10**6)}" for _ in range(300)]
    assert partitions_of(keys, partitions).tolist() == [partition_of(key, partitions) for key in keys]


def test_text_and_bytes_keys_land_alike() -> None:
    assert [partition_of(k, 6) for k in JAVA_MURMUR2] == [partition_of(k.encode(), 6) for k in JAVA_MURMUR2]


def test_key_partitioner_maps_into_the_topics_partition_ids_in_order() -> None:
    partitioner = KeyPartitioner([5, 3, 4])
    for key in JAVA_MURMUR2:
        assert partitioner(key.encode()) == [3, 4, 5][partition_of(key, 3)]


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="no partitions"):
        KeyPartitioner([])
