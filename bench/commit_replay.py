"""Redis's CPU for the worker's commit scripts alone, replayed from one real run: how Lua changes are judged.

Why: in a whole run Redis shares the two cores with the worker, its fetcher and the
broker, and its CPU per record moves by 10-20% from run to run. Replaying the same
commit-script calls into a fresh ``redis-server``, one after another, leaves only the
scripts' own work, and ``DEBUG DIGEST`` of the state after them says whether a variant
of the script leaves the same bytes.

``capture DIR`` sets up ``bench.worker_bench``'s state (bootstrap to 2011-06-01 with
k = 6, the rest of the year replayed into a fresh topic), saves Redis's snapshot
(``DIR/before.rdb``), then runs ``python -m worker run --until-caught-up`` with every
commit-script call written to ``DIR/calls.bin`` (msgpack: the keys and the argument)
and the records it applied to ``DIR/records``.
``replay DIR --code A --code B`` loads each checkout's commit script into a fresh
``redis-server`` from the snapshot, sets each partition's epoch as the run's claims
left it, and runs every captured call; ``--rounds`` times, in turns. A checkout's
script must read the captured argument (the one that captured it, or a variant of
its Lua).

    python -m bench.commit_replay capture /tmp/cap
    python -m bench.commit_replay replay /tmp/cap --code . --code /tmp/variant
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import redis

from bench.worker_bench import CUTOFF, ROOT, bootstrap
from producer.replay import ReplayOptions, replay
from shared.redis_client import make_redis
from shared.settings import as_environment, isolated_settings

# Runs in the child, in the captured checkout: the worker as deployed, its commit calls recorded.
_CHILD = """
import runpy, sys
import msgspec
import redis.commands.core as core
from worker.stream import checkpoint
out = open(sys.argv[2], "ab")
encode = msgspec.msgpack.Encoder().encode
call = core.Script.__call__
def recorded(self, keys=[], args=[], client=None):
    if self.script == checkpoint._COMMIT:
        blob = encode([list(keys), list(args)])
        out.write(len(blob).to_bytes(4, "little") + blob)
    return call(self, keys=keys, args=args, client=client)
core.Script.__call__ = recorded
sys.argv = ["worker", "run", "--until-caught-up", "--group", sys.argv[1]]
try:
    runpy.run_module("worker", run_name="__main__", alter_sys=True)
finally:
    out.close()
"""


def capture(target: Path, code: Path) -> None:
    """The snapshot before a worker run and every commit-script call of that run, into ``target``."""
    from rig.local_services import RedisServer, TansuBroker

    dataset = Path(os.environ.get("SEG_DATASET", "../shared/data/online_retail.csv.xz"))
    target.mkdir(parents=True, exist_ok=True)
    calls = target / "calls.bin"
    calls.unlink(missing_ok=True)
    with TansuBroker() as broker, RedisServer(appendonly=False) as server, tempfile.TemporaryDirectory() as tmp:
        settings = isolated_settings(broker.bootstrap_servers, server.url, "replay")
        replay(dataset, settings, ReplayOptions(start=CUTOFF, checkpoint=Path(tmp) / "replay.json"))
        bootstrap(settings, dataset, Path(tmp))
        make_redis(settings.redis).save()
        shutil.copy(server.workdir / "dump.rdb", target / "before.rdb")
        env = os.environ | as_environment(settings) | {"PYTHONPATH": str(code)}
        command = [sys.executable, "-c", _CHILD, "commit-replay", str(calls)]
        lines = subprocess.run(command, env=env, cwd=code, check=True, capture_output=True, text=True).stdout
        summary = next(json.loads(line) for line in reversed(lines.splitlines()) if line.startswith('{"records"'))
    (target / "records").write_text(str(int(summary["records"])))
    print(f"captured {sum(1 for _ in _calls(calls)):,} commit calls of {summary['records']:,.0f} records into {target}")


def _calls(path: Path) -> Iterator[tuple[list[str], list[bytes]]]:
    data = path.read_bytes()
    decode = msgspec.msgpack.Decoder(tuple[list[str], list[bytes]]).decode
    at = 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "little")
        yield decode(data[at + 4 : at + 4 + size])
        at += 4 + size


def _commit_script(code: Path) -> str:
    """The checkout's commit script (imported there, in its own interpreter)."""
    program = "import sys; from worker.stream.checkpoint import _COMMIT; sys.stdout.write(_COMMIT)"
    env = os.environ | {"PYTHONPATH": str(code)}
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=code, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def _cpu_s(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def replay_calls(source: Path, script: str) -> tuple[float, str]:
    """Redis's CPU seconds for every captured call with ``script``, and the digest of the state after them."""
    from rig.local_services import free_port, wait_for_port

    calls = list(_calls(source / "calls.bin"))
    epoch = msgspec.msgpack.Decoder().decode
    with tempfile.TemporaryDirectory(prefix="commit-replay-") as workdir:
        shutil.copy(source / "before.rdb", Path(workdir) / "dump.rdb")
        port = free_port()
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--save", ""]
        server = subprocess.Popen(
            [*command, "--appendonly", "no", "--enable-debug-command", "yes"], stdout=subprocess.DEVNULL
        )
        try:
            wait_for_port(port)
            client = redis.Redis(port=port)
            while client.info("persistence")["loading"]:
                time.sleep(0.05)
            sha = client.script_load(script)
            for keys, args in calls:  # the epochs the run's claims left (the snapshot has the ones before)
                client.hset(keys[0], "epoch", epoch(args[0])["epoch"])
            before = _cpu_s(client)
            for keys, args in calls:
                if client.evalsha(sha, len(keys), *keys, *args)[0] != 1:
                    raise SystemExit("a replayed commit was fenced: the snapshot and the calls do not belong together")
            spent = _cpu_s(client) - before
            return spent, client.execute_command("DEBUG", "DIGEST").decode()
        finally:
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    taking = commands.add_parser("capture", help="run the worker once and keep its commit calls")
    taking.add_argument("target", type=Path)
    taking.add_argument("--code", type=Path, default=ROOT, help="checkout whose worker runs")
    replaying = commands.add_parser("replay", help="replay captured calls with each checkout's commit script")
    replaying.add_argument("source", type=Path)
    replaying.add_argument("--code", type=Path, action="append", help="checkout whose script runs (repeatable)")
    replaying.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    if options.command == "capture":
        capture(options.target, options.code.resolve())
        return
    scripts = {code: _commit_script(code.resolve()) for code in options.code or [ROOT]}
    records = int((options.source / "records").read_text())
    for round_ in range(options.rounds):
        for code, script in scripts.items():
            spent, digest = replay_calls(options.source, script)
            per_record = 1e6 * spent / records
            print(f"{code} round {round_ + 1}: Redis {spent:.3f} s, {per_record:.2f} µs/record; digest {digest}")


if __name__ == "__main__":
    main()
