"""The library API: :func:`simulate` writes the CSV and its ground truth."""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from producer.simulate.archetypes import ARCHETYPES, Archetype
from producer.simulate.catalogue import build_catalogue
from producer.simulate.drift import DriftEpisode
from producer.simulate.generator import Population, generate

DRIFT_STREAM = 1  # second seed word of the drift generator, independent of the base data
CHUNK_ROWS = 200_000  # lines formatted and written at a time: the text of one chunk is all the text in memory


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate and where to write it (``.csv`` or ``.csv.xz``)."""

    out: Path
    customers: int = 4000
    start: datetime = datetime(2010, 12, 1)
    days: int = 365
    seed: int = 42
    products: int = 300
    drift: tuple[DriftEpisode, ...] = ()
    archetypes: tuple[Archetype, ...] = field(default=ARCHETYPES)


@dataclass(frozen=True)
class SimulationResult:
    """Where the data and the truth went, and how much was written."""

    path: Path
    truth_path: Path
    lines: int
    customers: int


def truth_path_of(path: Path) -> Path:
    """``FILE.truth.json`` next to ``FILE``."""
    return path.with_name(path.name + ".truth.json")


def simulate(config: SimulationConfig) -> SimulationResult:
    """Generate the file and ``FILE.truth.json``; the same config always gives the same bytes."""
    out = Path(config.out)
    if not (out.name.endswith(".csv") or out.name.endswith(".csv.xz")):
        raise ValueError(f"{out}: the output must end in .csv or .csv.xz")
    if config.customers < len(config.archetypes) or config.days < 28:
        raise ValueError("simulate at least one customer per archetype and at least 28 days")
    rng = np.random.default_rng(config.seed)
    drift_rng = np.random.default_rng([config.seed, DRIFT_STREAM])
    catalogue = build_catalogue(rng, config.products)
    rows, population = generate(
        rng, drift_rng, config.archetypes, catalogue, config.customers, config.start, config.days, config.drift
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(out, "wb", preset=1) if out.name.endswith(".xz") else out.open("wb") as sink:
        for index, frame in enumerate(rows.frames(CHUNK_ROWS)):
            sink.write(frame.to_csv(index=False, header=index == 0, lineterminator="\n").encode())
    truth = truth_path_of(out)
    truth.write_text(json.dumps(_truth(config, population), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return SimulationResult(out, truth, len(rows), config.customers)


def _truth(config: SimulationConfig, population: Population) -> dict[str, object]:
    names = [a.name for a in config.archetypes]
    return {
        "seed": config.seed,
        "start": config.start.isoformat(),
        "days": config.days,
        "archetypes": {a.name: {k: v for k, v in a.__dict__.items() if k != "name"} for a in config.archetypes},
        "customers": {
            cid: names[kind]
            for cid, kind in zip(population.customer_ids.tolist(), population.archetypes.tolist(), strict=True)
        },
        "drift": population.drift_notes,
    }
