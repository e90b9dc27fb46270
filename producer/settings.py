"""Producer settings (``SEG_PRODUCER_*``): tuning and safety limits, not connection details."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from shared.settings import section_config


class ProducerSettings(BaseSettings):
    """What the replay needs beyond :class:`shared.settings.Settings`."""

    model_config = section_config("producer")

    checkpoint_dir: Path = Field(Path(".checkpoints"), description="where resume checkpoints are kept")
    checkpoint_interval_s: float = Field(1.0, gt=0, description="how often the acked watermark is saved")
    max_price: float = Field(100_000.0, gt=0, description="unit prices above this are out_of_range")
    max_quantity: int = Field(1_000_000, gt=0, description="|quantity| above this is out_of_range")
    chunk_rows: int = Field(20_000, ge=1, description="rows read per chunk (bounds memory; small keeps the sender fed)")
    reorder_buffer: int = Field(10_000, ge=0, description="rows held to sort slightly disordered input")
    encoding: str = Field("utf-8", description="text encoding of CSV input")
    max_unacknowledged: int = Field(
        100_000, ge=1, description="sends waiting for the broker's ack before the replay waits (bounds memory)"
    )
    stop_flush_s: float = Field(
        5.0, ge=0, description="on SIGINT/SIGTERM, wait at most this long for outstanding acks, then save and exit"
    )
    retry_initial_s: float = Field(1.0, gt=0, description="first wait before resending after a broker outage")
    retry_max_s: float = Field(30.0, gt=0, description="longest wait between resend attempts (doubling from the first)")
    prepare_process: bool = Field(
        True,
        description="read/validate/serialise in a child process (faster on 2+ CPUs); "
        "false for one CPU or when the caller's __main__ cannot be re-imported (python -)",
    )
