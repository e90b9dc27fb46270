"""``make bench-scale``: the state at a million customers, against the real year, measured in one run.

Simulates ``--customers`` customers over ``--days`` days (the simulator writes its
text a chunk at a time), bootstraps on all but the last ``--stream-days`` days in a
child process (its time and peak RSS), replays the rest into a fresh topic and runs
the real worker (``python -m worker run --until-caught-up``, child process) over
it. Printed, all from this run:

* worker peak RSS (with its fetcher) and RSS per owned customer;
* the time to load every customer on assignment: the worker's own
  :func:`~worker.stream.ownership.load_partition` over every partition, in a fresh
  child process (its RSS before and after, per customer), once before the worker
  runs (the bootstrapped customers) and once after (every customer);
* Redis ``used_memory`` per customer, at 1M and on the real year (same steps);
* rows/s at 1M next to rows/s on the real year;
* stream = batch on a random sample of 1,000 customers: their stored aggregates
  against pandas over their own lines (:mod:`tests.truth`), and each record's
  features and vector consistent with its segment.

A benchmark, not a test: it asserts nothing and is not in CI. ``--file`` reuses a
simulated file. Run it niced: ``nice -n 10 make bench-scale``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import redis

from bench.worker_bench import _worker_rate, run_measured
from producer.replay import ReplayOptions, replay
from producer.simulate.simulation import SimulationConfig, simulate
from rig.local_services import RedisServer, TansuBroker
from shared.readers import open_rows
from shared.redis_client import make_redis
from shared.settings import Settings, as_environment, isolated_settings
from shared.state.customers import find_record
from shared.state.keys import Keys
from shared.state.model_store import require_current
from tests.truth import _same, assert_consistent, batch_truth

START = datetime(2011, 3, 1)  # a month without the shop's Christmas closure
REAL_CUTOFF = datetime(2011, 6, 1)
SAMPLE = 1_000
K = 6


def _progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def memory_by_kind(client: redis.Redis, keys: Keys, sample: int = 20_000) -> dict[str, float]:
    """Bytes by kind of key (customer record, members, product shares, …), from ``MEMORY USAGE`` of
    up to ``sample`` keys of each kind, scaled to the kind's key count."""
    counts: dict[str, int] = {}
    sampled: dict[str, list[str]] = {}
    for key in client.scan_iter(match=f"{keys.prefix}*", count=10_000):
        kind = key[len(keys.prefix) :].split(":")[1] if "}:" in key else "other"
        counts[kind] = counts.get(kind, 0) + 1
        if len(sampled.setdefault(kind, [])) < sample:
            sampled[kind].append(key)
    out = {}
    for kind, names in sampled.items():
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.memory_usage(name, samples=0)
        sizes = [size or 0 for size in pipe.execute()]
        out[kind] = sum(sizes) / len(sizes) * counts[kind]
    return out


def _customers(client: redis.Redis, keys: Keys, partitions: int) -> int:
    return sum(int(client.scard(keys.customers(p))) for p in range(partitions))


def _sample_file(source: Path, sample: set[str], out: Path) -> None:
    """The sample customers' lines of ``source``, in file order, as a CSV the loader reads."""
    written = False
    for chunk in open_rows(source, chunk_rows=500_000):
        ids = chunk["customer_id"].fillna("").str.strip().str.removesuffix(".0")
        part = chunk[ids.isin(sample)].rename(
            columns={
                "invoice_no": "InvoiceNo",
                "stock_code": "StockCode",
                "description": "Description",
                "quantity": "Quantity",
                "invoice_date": "InvoiceDate",
                "unit_price": "UnitPrice",
                "customer_id": "CustomerID",
                "country": "Country",
            }
        )
        part.to_csv(out, mode="a", header=not written, index=False)
        written = True


def stream_equals_batch(client: redis.Redis, keys: Keys, source: Path, workdir: Path, seed: int = 7) -> int:
    """Compare a random sample of stored customers with pandas over their own lines; returns how many agree."""
    ids: list[str] = []
    for partition in range(int(json.loads(client.get(keys.bootstrap_meta) or "{}")["partitions"])):
        ids += client.srandmember(keys.customers(partition), SAMPLE)
    sample = set(random.Random(seed).sample(sorted(ids), min(SAMPLE, len(ids))))
    lines = workdir / "sample.csv"
    _sample_file(source, sample, lines)
    truth = batch_truth(lines)
    transform = require_current(client, keys).transform
    agree = 0
    for cid in sorted(sample):
        record = find_record(client, keys, cid)
        expected = truth.aggregates.get(cid)
        if record is None or expected is None:
            print(f"  MISMATCH {cid}: stored {record is not None}, in the file {expected is not None}")
            continue
        have = record.aggregates.to_dict()
        wrong = [name for name, value in expected.items() if not _same(value, have[name])]
        try:
            assert_consistent(record, transform)
        except AssertionError:
            wrong.append("features/vector")
        if wrong:
            print(f"  MISMATCH {cid}: {', '.join(wrong)}")
        else:
            agree += 1
    return agree


def assignment_load(settings: Settings) -> dict[str, float]:
    """The worker's assignment load of every partition, in a fresh child process."""
    child = run_measured([sys.executable, "-m", "bench.assignment_load"], os.environ | as_environment(settings))
    return json.loads(child.last_line)


def one_run(settings: Settings, source: Path, cutoff: datetime, workdir: Path, sample: bool) -> dict[str, float]:
    """Bootstrap before ``cutoff`` (child), replay the rest, assignment load, worker; the figures."""
    env = os.environ | as_environment(settings)
    bootstrap = run_measured(
        [
            sys.executable,
            "-m",
            "worker",
            "bootstrap",
            "--input",
            str(source),
            "--until",
            cutoff.isoformat(),
            "--k",
            str(K),
            "--force",
        ],
        env | {"SEG_BOOTSTRAP_MODEL_FILE": str(workdir / "model.json")},
    )
    client = make_redis(settings.redis)
    keys = Keys(settings.redis.key_prefix)
    partitions = settings.topics.partitions
    seeded = _customers(client, keys, partitions)
    _progress(f"bootstrap: {seeded:,} customers in {bootstrap.seconds:.0f} s, peak RSS {bootstrap.peak_mb:,.0f} MB")
    after_bootstrap = _used_memory(client)
    started = time.perf_counter()
    sent = replay(source, settings, ReplayOptions(start=cutoff, checkpoint=workdir / "replay.json")).sent
    replay_s = time.perf_counter() - started
    _progress(f"replayed {sent:,} lines in {replay_s:.0f} s")
    load = assignment_load(settings)
    _progress(f"assignment load: {load['customers']:,} customers in {load['seconds']:.1f} s")
    rate, records, peak_mb = _worker_rate(settings)
    _progress(f"worker: {records:,.0f} records at {rate:,.0f} rows/s, peak RSS {peak_mb:,.0f} MB")
    customers = _customers(client, keys, partitions)
    used = _used_memory(client)
    reload = assignment_load(settings)
    _progress(f"assignment load after the stream: {reload['customers']:,} customers in {reload['seconds']:.1f} s")
    result = {
        "bootstrap_s": bootstrap.seconds,
        "bootstrap_peak_rss_mb": bootstrap.peak_mb,
        "seeded_customers": float(seeded),
        "redis_after_bootstrap_per_customer_b": after_bootstrap / max(seeded, 1),
        "replayed": float(sent),
        "replay_s": replay_s,
        "assignment_load_s": load["seconds"],
        "assignment_loaded": load["customers"],
        "assignment_rss_per_customer_b": load["rss_growth_b"] / max(load["customers"], 1),
        "reload_s": reload["seconds"],
        "reloaded": reload["customers"],
        "worker_rows_per_s": rate,
        "worker_records": records,
        "worker_peak_rss_mb": peak_mb,
        "customers": float(customers),
        "worker_rss_per_customer_b": peak_mb * 2**20 / max(customers, 1),
        "redis_used_memory_b": float(used),
        "redis_per_customer_b": used / max(customers, 1),
    }
    for kind, size in memory_by_kind(client, keys).items():
        result[f"redis_kind_{kind}_b"] = size / max(customers, 1)
    if sample:
        result["sample_agree"] = float(stream_equals_batch(client, keys, source, workdir))
    return result


def _print(name: str, figures: dict[str, float]) -> None:
    print(
        f"{name}: bootstrap {figures['bootstrap_s']:.1f} s, peak RSS {figures['bootstrap_peak_rss_mb']:,.0f} MB, "
        f"{figures['seeded_customers']:,.0f} customers seeded\n"
        f"  assignment load: {figures['assignment_loaded']:,.0f} customers in {figures['assignment_load_s']:.2f} s "
        f"({figures['assignment_rss_per_customer_b']:,.0f} B of RSS per customer); after the stream "
        f"{figures['reloaded']:,.0f} customers in {figures['reload_s']:.2f} s\n"
        f"  worker: {figures['worker_records']:,.0f} records at {figures['worker_rows_per_s']:,.0f} rows/s; peak RSS "
        f"{figures['worker_peak_rss_mb']:,.0f} MB for {figures['customers']:,.0f} owned customers "
        f"({figures['worker_rss_per_customer_b']:,.0f} B per customer)\n"
        f"  Redis used_memory {figures['redis_used_memory_b'] / 2**20:,.0f} MB: "
        f"{figures['redis_per_customer_b']:,.0f} B per customer (after the bootstrap: "
        f"{figures['redis_after_bootstrap_per_customer_b']:,.0f} B)\n"
        "  by kind of key, per customer: "
        + ", ".join(
            f"{name[11:-2]} {value:,.0f} B" for name, value in figures.items() if name.startswith("redis_kind_")
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--stream-days", type=int, default=4)
    parser.add_argument("--file", type=Path, help="a simulated file to reuse (simulated from 2011-03-01, same --days)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--real-year-only", action="store_true", help="only the real year's steps (a few minutes)")
    args = parser.parse_args()
    dataset = Path(os.environ.get("SEG_DATASET", "../shared/data/online_retail.csv.xz"))
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as folder:
        workdir = Path(folder)
        source = args.file
        if source is None and not args.real_year_only:
            started = time.perf_counter()
            source = simulate(
                SimulationConfig(out=workdir / "scale.csv", customers=args.customers, start=START, days=args.days)
            ).path
            print(f"simulated {args.customers:,} customers x {args.days} days in {time.perf_counter() - started:.0f} s")
        cutoff = START + timedelta(days=args.days - args.stream_days)
        results = {}
        runs = [("real year", dataset, REAL_CUTOFF, False)]
        if source is not None:
            runs.append((f"{args.customers:,} customers", source, cutoff, True))
        for name, path, until, sample in runs:
            if not path.exists():
                print(f"{name}: {path} is missing; skipped")
                continue
            with TansuBroker() as broker, RedisServer(appendonly=False) as server:
                settings = isolated_settings(broker.bootstrap_servers, server.url, "scale", partitions=args.partitions)
                run_dir = workdir / name.replace(" ", "-").replace(",", "")
                run_dir.mkdir()
                results[name] = one_run(settings, path, until, run_dir, sample)
            _print(name, results[name])
    scale = results.get(f"{args.customers:,} customers")
    real = results.get("real year")
    if scale and real:
        print(
            f"rows/s at {args.customers:,} customers / real year: "
            f"{scale['worker_rows_per_s'] / real['worker_rows_per_s']:.2f} (goal >= 0.8)"
        )
    if scale:
        print(f"stream = batch on a random sample: {scale['sample_agree']:,.0f} of {SAMPLE:,} customers agree")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
