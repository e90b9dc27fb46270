"""``make demo``: the whole pipeline on a local broker and Redis, then a summary and a report.

Bootstrap on the history before the cutoff, replay the rest through Kafka, let a
worker catch up, print what happened and write the HTML report (``out/report.html``,
as ``python -m worker report`` does). Uses the real dataset from SEG_DATASET
(default ``../shared/data/online_retail.csv.xz``); where there is none, a
simulated year (``live-segments simulate``, seed 42) of the same shape.

``SEG_DEMO_CUSTOMERS`` and ``SEG_DEMO_DAYS`` shrink the simulated data (the test
that keeps the demo free of warnings runs it on 300 customers and 200 days).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from producer.replay import ReplayOptions, replay
from producer.simulate.simulation import SimulationConfig, simulate
from rig.local_services import RedisServer, TansuBroker
from shared.logs import configure_logging
from shared.redis_client import make_redis
from shared.settings import KafkaSettings, RedisSettings, Settings
from shared.state.keys import Keys
from shared.state.layout import worker_counters
from shared.state.model_stats import live_stats
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings
from worker.bootstrap.summary import summary as bootstrap_summary
from worker.drift import DriftSettings
from worker.drift_service.service import DriftMonitor
from worker.drift_service.settings import MonitorSettings
from worker.drift_service.store import MonitorStore
from worker.refresh.settings import RefreshSettings
from worker.report.gather import gather as gather_report
from worker.report.page import write as write_report
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

CUTOFF = datetime(2011, 6, 1)
DATASET = Path(os.environ.get("SEG_DATASET", "../shared/data/online_retail.csv.xz"))
REPORT = Path("out/report.html")


def main() -> int:
    configure_logging(level=logging.WARNING)  # the steps print their own summaries
    started = time.monotonic()
    with TansuBroker() as broker, RedisServer() as redis_server, tempfile.TemporaryDirectory() as workdir:
        dataset = DATASET
        if not dataset.exists():
            simulation = SimulationConfig(
                out=Path(workdir) / "simulated.csv",
                customers=int(os.environ.get("SEG_DEMO_CUSTOMERS", "4000")),
                days=int(os.environ.get("SEG_DEMO_DAYS", "365")),
            )
            print(
                f"no data file at {DATASET} (set SEG_DATASET): simulating {simulation.days} days of "
                f"Online-Retail-like invoices of {simulation.customers:,} customers"
            )
            dataset = simulate(simulation).path
        print(f"local broker at {broker.bootstrap_servers}, Redis at {redis_server.url}")
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers), redis=RedisSettings(url=redis_server.url)
        )
        client = make_redis(settings.redis)
        keys = Keys(settings.redis.key_prefix)
        print(f"\n1/4 bootstrap on {dataset.name} before {CUTOFF:%Y-%m-%d}")
        options = BootstrapSettings(model_file=Path("out/model.json"))
        result = run_bootstrap(dataset, CUTOFF, client, keys, options, partitions=settings.topics.partitions)
        print(bootstrap_summary(result))
        print(f"\n2/4 replay from {CUTOFF:%Y-%m-%d} into '{settings.topics.invoices}'")
        replayed = replay(
            dataset, settings, ReplayOptions(start=CUTOFF, checkpoint=Path(workdir) / "replay.json", progress=True)
        )
        print("\n".join(replayed.lines()))
        print("\n3/4 worker catches up")
        worker = Worker(settings, WorkerSettings())
        worker.run(until_caught_up=True)
        model = result.snapshot
        counts = live_stats(client, keys, model).counts
        print(f"applied {worker.records:,} records in {worker.batches} batches")
        print("\n4/4 drift monitor evaluates the workers' observations")
        monitor = DriftMonitor(settings, MonitorSettings(), DriftSettings(), RefreshSettings())
        monitor.run(until_caught_up=True)
        for alert in MonitorStore(client, keys, keep=1).recent(1_000)[::-1]:
            if alert.state != "update" or alert.raises():
                state = "joined" if alert.state == "update" else alert.state
                print(f"  {alert.window.end:%Y-%m-%d %H:%M} {state:<6} {alert.incident_id} {alert.monitor}: "
                      f"{alert.statistic} {alert.value:.3g} (threshold {alert.threshold:.3g})")  # fmt: skip
        report = gather_report(settings)
        print(f"distinct segment changes on '{settings.topics.segment_changes}': {report.changes:,}")
        print("segment sizes now (live model):")
        for segment, count in zip(model.segments, counts, strict=True):
            print(f"  {segment.id:>2} {segment.name:<24} {int(count):>6,}")
        counters = worker_counters(client, keys)
        print("worker counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
        print(f"report: {write_report(report, REPORT).resolve()}")
    print(f"\ndemo done in {time.monotonic() - started:.0f} s; model file out/model.json, report {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
