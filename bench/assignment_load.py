"""Child of ``make bench-scale``: the worker's assignment load of every partition, timed, in a fresh process.

Runs :func:`worker.stream.ownership.load_partition` (what the worker runs when it
is assigned a partition) for every partition into one book, and prints one JSON
line: customers loaded, seconds, and the RSS it grew by.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from shared.redis_client import make_redis
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.layout import partition_count
from worker.stream.book import CustomerBook
from worker.stream.ownership import load_partition


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    settings = Settings()
    client = make_redis(settings.redis)
    keys = Keys(settings.redis.key_prefix)
    book = CustomerBook()
    before = _rss_bytes()
    started = time.perf_counter()
    customers = sum(load_partition(client, keys, p, book) for p in range(partition_count(client, keys)))
    seconds = time.perf_counter() - started
    print(json.dumps({"customers": customers, "seconds": seconds, "rss_growth_b": _rss_bytes() - before}))


if __name__ == "__main__":
    main()
