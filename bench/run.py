"""``make bench``: every benchmark in one run, on a local broker and Redis unless configured.

Prints figures and ratios against baselines measured in the same run; asserts nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench import bootstrap_bench, producer_bench, worker_bench
from harness import drift as drift_eval
from rig.local_services import RedisServer, TansuBroker
from shared.settings import isolated_settings

DATASET = Path(os.environ.get("SEG_DATASET", "../shared/data/online_retail.csv.xz"))


def main() -> None:
    if not DATASET.exists():
        raise SystemExit(f"the benchmarks need the real dataset: set SEG_DATASET (looked at {DATASET})")
    worker_bench.require_peer()
    print("== bootstrap ==")
    bootstrap_bench.run(DATASET)
    with TansuBroker() as broker, RedisServer(appendonly=False) as redis_server:
        print("\n== producer ==")
        producer_bench.run(isolated_settings(broker.bootstrap_servers, redis_server.url, "bench"), DATASET)
        print("\n== worker ==")
        worker_bench.run(isolated_settings(broker.bootstrap_servers, redis_server.url, "bench"), DATASET)
    print("\n== drift monitors (offline evaluation harness) ==")
    drift_eval.run(DATASET)


if __name__ == "__main__":
    main()
