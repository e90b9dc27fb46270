"""Worker settings (``SEG_WORKER_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from shared.logs import LogFormat
from shared.settings import section_config


class WorkerSettings(BaseSettings):
    """Tuning of the consume loop, debouncing and sweeps; defaults suit the Online Retail data."""

    model_config = section_config("worker")

    group_id: str = Field("segment-workers", min_length=1)
    batch_max_records: int = Field(20_000, ge=1, le=100_000, description="records per poll and per Redis commit")
    fetch_partition_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        description="bytes fetched per partition per request: large enough that one prefetched response "
        "holds a whole batch, so the next batch is on its way while this one is processed",
    )
    poll_timeout_ms: int = Field(500, ge=10)
    publish_margin: float = Field(
        0.5,
        ge=0.0,
        description="a published segment switches only when the new centroid is closer by this much (scaled units)",
    )
    confirm_sweeps: int = Field(
        3, ge=1, description="an inactivity-driven segment switch must hold at this many consecutive sweeps"
    )
    inactivity_dwell_days: float = Field(
        7.0,
        ge=0,
        description="an inactivity-driven switch also waits until the published segment is more than this many "
        "event-days old (purchases and cancellations switch at once)",
    )
    sweep_passes: int = Field(
        2,
        ge=1,
        le=10,
        description="Lloyd passes of each daily sweep over all customers; every partition finishes a pass before "
        "any worker starts the next, so more passes mean more waiting between workers (README, Event time)",
    )
    dedup_retention_days: int = Field(
        7,
        ge=1,
        le=400,
        description="event ids are remembered this many event-days for dropping duplicates; a record older than "
        "this behind its partition's time is dead-lettered (too_late) rather than risk counting it twice",
    )
    future_tolerance_days: float = Field(
        31.0,
        gt=0,
        description="a record more than this many event-days ahead of its partition's time is dead-lettered "
        "(future_event_time): a typo like 2111 must not move time for everyone; above a month's closure, raise it",
    )
    quiet_after_s: float = Field(
        30.0,
        gt=0,
        description="a caught-up partition that received nothing for this long stops holding the others' "
        "event-time order back (live operation; see README, Event time)",
    )
    held_records_limit: int = Field(
        20_000,
        ge=1_000,
        description="records a partition may hold while it waits for the others' event time; beyond it, its "
        "fetching pauses (Kafka keeps the rest: a larger limit only costs memory)",
    )
    publish_timeout_s: float = Field(
        30.0, gt=0, description="how long one publish of an outbox waits for Kafka's acknowledgements before retrying"
    )
    model_check_s: float = Field(
        5.0, gt=0, description="while no events arrive, look for a new live model version this often (seconds)"
    )
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    metrics_port: int = Field(
        0, ge=0, le=65535, description="port of /metrics, /healthz and /readyz; 0 = no HTTP server"
    )
    metrics_host: str = Field(
        "127.0.0.1", min_length=1, description="address the metrics port listens on (0.0.0.0 in a container)"
    )
    liveness_timeout_s: float = Field(
        60.0, gt=0, description="/healthz fails when the loop has not polled for this long"
    )
    log_format: LogFormat = Field("text", description="text, or json for one JSON object per line")
