"""CPU per record of the worker's main thread on the real year: the figure speed work is judged by.

Why CPU and not rows/s: on a small shared machine the wall-clock rate moves with
whatever else runs, while the CPU a step costs moves much less. The set-up is
``bench.worker_bench``'s (bootstrap to 2011-06-01 with k = 6, the rest of the
year replayed into a fresh topic, 332,878 records); then, ``--runs`` times, fresh
state and ``python -m worker run --until-caught-up`` in a child whose
``Worker.process`` is timed with ``time.thread_time``. Printed per run: records,
µs of main-thread CPU per record inside steps and in all (start-up included), the
process's CPU per record (its other threads too; the fetcher process apart), the
fetcher process's, Redis's (``INFO cpu`` of the bench's own redis-server, before
and after) and the broker's (``/proc``), their sum and the rate it allows at
best (every core busy with nothing else), the wall-clock rate, and the peak RSS
of the worker and its fetcher; after each run's turns, the rate of
``bench.worker_bench``'s raw kafka-python consume loop over the same topic, the
baseline the worker's speed goal is set against.

``--code DIR`` (repeatable) measures the worker of other checkouts over the same
topic, taking turns run by run, so a before/after shares one workload and the
machine's moods; ``--py-spy DIR`` records each checkout's first run with
``py-spy record -r 200 -f raw --threads`` into DIR/<turn>.txt (turn: its place among the
``--code`` options, from 0).

    git worktree add /tmp/before <commit>
    python -m bench.worker_cpu --runs 3 --code /tmp/before --code .
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from bench.worker_bench import CUTOFF, ROOT, bootstrap, raw_consume_rate
from producer.replay import ReplayOptions, replay
from shared.redis_client import make_redis
from shared.settings import Settings, as_environment, isolated_settings

CORES = os.cpu_count() or 1

# Runs in the child, in the measured checkout: the worker as deployed, its steps' CPU summed.
_CHILD = """
import json, resource, runpy, sys, time
from worker.stream.loop import Worker
spent = [0.0]
process = Worker.process
def timed(self, *args, **kwargs):
    started = time.thread_time()
    try:
        return process(self, *args, **kwargs)
    finally:
        spent[0] += time.thread_time() - started
Worker.process = timed
sys.argv = ["worker", "run", "--until-caught-up", "--group", sys.argv[1]]
try:
    runpy.run_module("worker", run_name="__main__", alter_sys=True)
finally:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    fetcher = resource.getrusage(resource.RUSAGE_CHILDREN)  # the fetcher process, waited for at the end
    print(json.dumps({"steps_s": spent[0], "main_s": time.thread_time(),
                      "process_s": usage.ru_utime + usage.ru_stime,
                      "fetcher_s": fetcher.ru_utime + fetcher.ru_stime,
                      # ru_maxrss carries the parent's peak over fork and exec: the worker's own is VmHWM;
                      # the fetcher's is at least the worker's RSS when it started it (below its own peak)
                      "worker_mb": next(int(line.split()[1]) for line in open("/proc/self/status")
                                        if line.startswith("VmHWM:")) / 1024,
                      "fetcher_mb": fetcher.ru_maxrss / 1024}))
"""


def _redis_cpu_s(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _process_cpu_s(pid: int) -> float:
    """User and system CPU of a running process (the broker), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(settings: Settings, code: Path, label: str, py_spy: Path | None, broker_pid: int) -> dict[str, float]:
    """One run over fresh state: the worker's summary line merged with its CPU figures, Redis's and the broker's."""
    fresh = isolated_settings(settings.kafka.bootstrap_servers, settings.redis.url, label)
    fresh = fresh.model_copy(update={"topics": fresh.topics.model_copy(update={"invoices": settings.topics.invoices})})
    with tempfile.TemporaryDirectory(prefix="worker-cpu-") as tmp:
        bootstrap(fresh, Path(os.environ["SEG_DATASET"]), Path(tmp))
    command = [sys.executable, "-c", _CHILD, f"cpu-{label}"]
    if py_spy is not None:
        command = [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "-r",
            "200",
            "-f",
            "raw",
            "--threads",
            "-o",
            str(py_spy),
            "--",
            *command,
        ]
    env = os.environ | as_environment(fresh) | {"PYTHONPATH": str(code)}
    client = make_redis(fresh.redis)
    redis_before, broker_before = _redis_cpu_s(client), _process_cpu_s(broker_pid)
    # py-spy may exit 1 after a complete profile ("No child process": it waits for a child already reaped),
    # so under it the run is judged by its summary lines instead of the exit status.
    done = subprocess.run(command, env=env, cwd=code, check=py_spy is None, capture_output=True, text=True)
    lines = done.stdout.splitlines()
    if not any(line.startswith('{"steps_s"') for line in lines):
        raise SystemExit(f"the worker run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    summary = next(json.loads(line) for line in reversed(lines) if line.startswith('{"records"'))
    cpu = next(json.loads(line) for line in reversed(lines) if line.startswith('{"steps_s"'))
    redis_s, broker_s = _redis_cpu_s(client) - redis_before, _process_cpu_s(broker_pid) - broker_before
    return summary | cpu | {"redis_s": redis_s, "broker_s": broker_s}


def main() -> None:
    """Set up once, then measure ``--runs`` times and print one line per run."""
    from rig.local_services import RedisServer, TansuBroker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--code", type=Path, action="append", help="checkout whose worker is measured (repeatable)")
    parser.add_argument("--py-spy", type=Path, default=None, help="directory for each checkout's first profile")
    options = parser.parse_args()
    dataset = Path(os.environ.get("SEG_DATASET", "../shared/data/online_retail.csv.xz"))
    os.environ["SEG_DATASET"] = str(dataset)
    if options.py_spy is not None:
        options.py_spy.mkdir(parents=True, exist_ok=True)
    with TansuBroker() as broker, RedisServer(appendonly=False) as redis_server, tempfile.TemporaryDirectory() as tmp:
        settings = isolated_settings(broker.bootstrap_servers, redis_server.url, "cpu")
        replay(dataset, settings, ReplayOptions(start=CUTOFF, checkpoint=Path(tmp) / "replay.json"))
        for run in range(options.runs):
            for turn, code in enumerate(options.code or [ROOT]):
                load = os.getloadavg()[0]
                profile = options.py_spy / f"{turn}.txt" if options.py_spy is not None and run == 0 else None
                got = measure(settings, code.resolve(), f"run{run}-{turn}", profile, broker.pid)
                n = got["records"]
                spent = sum(got[part] for part in ("process_s", "fetcher_s", "redis_s", "broker_s"))
                print(
                    f"{code} run {run + 1}: {n:,.0f} records in {got['batches']:,.0f} steps; "
                    f"main thread {1e6 * got['steps_s'] / n:.1f} µs/record in steps, "
                    f"{1e6 * got['main_s'] / n:.1f} in all; process {1e6 * got['process_s'] / n:.1f} µs/record; "
                    f"fetcher {1e6 * got['fetcher_s'] / n:.1f}; Redis {1e6 * got['redis_s'] / n:.1f}; "
                    f"broker {1e6 * got['broker_s'] / n:.1f}; all {1e6 * spent / n:.1f} µs/record, at most "
                    f"{CORES * n / spent:,.0f} rows/s on {CORES} cores; "
                    f"{got['records_per_s']:,.0f} rows/s; peak RSS worker {got['worker_mb']:.0f} MB, "
                    f"fetcher {got['fetcher_mb']:.0f} MB; load {load:.1f}",
                    flush=True,
                )
            raw = raw_consume_rate(settings, settings.topics.invoices)
            print(f"run {run + 1}: raw kafka-python consume loop {raw:,.0f} rows/s, 0.8x {0.8 * raw:,.0f}", flush=True)


if __name__ == "__main__":
    main()
