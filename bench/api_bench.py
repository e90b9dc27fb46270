"""``make bench-api``: ``GET /customers/{id}`` under concurrent load against a minimal app doing the same Redis read.

Both run as their own uvicorn process on this machine, in the same run, against
the same Redis (bootstrapped on the real data to 2011-06-01 with k = 8, or a
simulated year when SEG_DATASET is absent): the API (``python -m worker api``) and
:func:`baseline`, a bare ASGI app that sends the same Redis commands (the customer's
record and ``{model}:current`` in one pipeline, then its members and, as the API's cache
does, every partition's popularity shares of its segment once per TTL) and returns the raw
replies and the recommendations as JSON. wrk (``apt-get install -y wrk``)
requests random customers over ``CONNECTIONS`` connections for ``DURATION_S`` seconds
after a warm-up run; each side is measured ``ROUNDS`` times, alternating. Prints
requests/s, p50/p99 latency, errors and the ratio API / baseline (goal >= 0.5).
Figures on a shared machine are indicative.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from producer.simulate.simulation import SimulationConfig, simulate
from rig.local_services import RedisServer, TansuBroker, free_port, wait_for_port
from shared.partitioner import partition_of
from shared.redis_client import make_async_redis, make_redis
from shared.settings import Settings, as_environment, isolated_settings
from shared.state.customers import units_of
from shared.state.keys import Keys
from shared.state.layout import partition_count
from worker.api.settings import ApiSettings
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings
from worker.queries.plan import call
from worker.queries.popularity import PopularityCache

CUTOFF = datetime(2011, 6, 1)
DATASET = Path(os.environ.get("SEG_DATASET", "../shared/data/online_retail.csv.xz"))
DURATION_S = 10
CONNECTIONS = 16
ROUNDS = 2
TOP = 10

_baseline_state: dict[str, Any] = {}


async def baseline(scope: dict, receive: Any, send: Any) -> None:
    """The minimal app: the same Redis reads as GET /customers/{id}, raw replies out.

    The customer's record and the live version; then the customer's members and, when
    the API's cache would read them too (:class:`~worker.queries.popularity.PopularityCache`,
    ``SEG_API_POPULARITY_TTL_S``), every partition's popularity shares of its published
    segment; the same ranking rule. No framework, no validation, no view.
    """
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if not _baseline_state:
        settings = Settings()
        keys = Keys(settings.redis.key_prefix)
        _baseline_state.update(
            client=make_async_redis(settings.redis),
            keys=keys,
            partitions=partition_count(make_redis(settings.redis), keys),
            popularity=PopularityCache(ApiSettings().popularity_ttl_s),
        )
    client, keys, count = _baseline_state["client"], _baseline_state["keys"], _baseline_state["partitions"]
    customer = scope["path"].rsplit("/", 1)[-1]
    partition = partition_of(customer, count)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.customer(partition, customer))
    pipe.get(keys.model_current)
    record, version = await pipe.execute()
    ranked: list = []
    if record.get("published"):
        segment, popularity = int(record["published"]), _baseline_state["popularity"]
        rankings = popularity.fresh([segment])
        missing = [] if rankings else [segment]
        pipe = client.pipeline(transaction=False)
        for command in [call("hgetall", keys.members(partition, customer)), *popularity.reads(keys, count, missing)]:
            getattr(pipe, command.name)(*command.args)
        members, *shares = await pipe.execute()
        rankings |= popularity.keep(missing, shares, count)
        ranked = rankings[segment].top(TOP, exclude=units_of(members))
    body = json.dumps({"record": record, "version": version, "recommendations": ranked}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _dataset(workdir: Path) -> Path:
    if DATASET.exists():
        return DATASET
    print(f"no data file at {DATASET}: a simulated year instead")
    return simulate(SimulationConfig(out=workdir / "simulated.csv")).path


def _wrk_script(ids: list[str], path: Path) -> Path:
    sample = random.Random(42).sample(ids, min(2_000, len(ids)))
    quoted = ",".join(f'"{customer}"' for customer in sample)
    path.write_text(
        f"local ids = {{{quoted}}}\n"
        "math.randomseed(42)\n"
        'request = function() return wrk.format("GET", "/customers/" .. ids[math.random(#ids)]) end\n'
    )
    return path


def _serve(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, timeout_s=60)
    return process


def _load(port: int, script: Path) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, error count."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{DURATION_S}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def found(pattern: str, flags: int = 0) -> re.Match[str]:
        match = re.search(pattern, out, flags)
        if match is None:
            raise RuntimeError(f"wrk printed no line matching {pattern!r}:\n{out}")
        return match

    def latency(label: str) -> float:
        value, unit = found(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    return {
        "rps": float(found(r"Requests/sec:\s+([\d.]+)").group(1)),
        "p50": latency("50%"),
        "p99": latency("99%"),
        "errors": errors,
    }


def run(settings: Settings, workdir: Path) -> None:
    client = make_redis(settings.redis)
    keys = Keys(settings.redis.key_prefix)
    started = time.monotonic()
    options = BootstrapSettings(k=8, model_file=workdir / "model.json")
    partitions = settings.topics.partitions
    run_bootstrap(_dataset(workdir), CUTOFF, client, keys, options, partitions=partitions)
    ids = sorted(customer for p in range(partitions) for customer in client.smembers(keys.customers(p)))
    print(f"bootstrapped {len(ids):,} customers in {time.monotonic() - started:.0f} s")
    script = _wrk_script(ids, workdir / "customers.lua")
    env = os.environ | as_environment(settings) | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    api_port, base_port = free_port(), free_port()
    sides = {
        "baseline": ([sys.executable, "-m", "uvicorn", "bench.api_bench:baseline", "--port", str(base_port),
                      "--log-level", "warning", "--no-access-log"], base_port),
        "api": ([sys.executable, "-m", "worker", "api", "--port", str(api_port)], api_port),
    }  # fmt: skip
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for round_ in range(ROUNDS):
        for name, (command, port) in sides.items():
            process = _serve(command, env, port)
            try:
                _load(port, script)  # warm-up: connections, model snapshot parsed, caches
                results[name].append(_load(port, script))
            finally:
                process.terminate()
                process.wait(timeout=30)
            r = results[name][-1]
            print(
                f"round {round_ + 1} {name:>8}: {r['rps']:>8,.0f} req/s  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  "
                f"errors {r['errors']:.0f}"
            )
    api = max(r["rps"] for r in results["api"])
    base = max(r["rps"] for r in results["baseline"])
    errors = sum(r["errors"] for side in results.values() for r in side)
    print(
        f"\nGET /customers/{{id}}: API {api:,.0f} req/s vs minimal app {base:,.0f} req/s (best of {ROUNDS} each): "
        f"ratio {api / base:.2f} (goal >= 0.5); errors {errors:.0f}"
    )


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("the API benchmark needs wrk: apt-get install -y wrk")
    with TansuBroker() as broker, RedisServer(appendonly=False) as redis_server, tempfile.TemporaryDirectory() as tmp:
        run(isolated_settings(broker.bootstrap_servers, redis_server.url, "bench-api"), Path(tmp))


if __name__ == "__main__":
    main()
