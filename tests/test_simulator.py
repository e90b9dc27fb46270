"""The simulator: reproducible, readable by the real readers and producer, drift as asked, archetypes recoverable."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from sklearn.metrics import adjusted_rand_score

from producer.cli import main as producer_main
from producer.simulate import ARCHETYPES, parse_drift
from producer.simulate.simulation import SimulationConfig, simulate
from shared.readers import open_rows
from shared.settings import Settings
from shared.state.keys import Keys
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
DRIFT_AT = datetime(2011, 9, 1)


def _small(out: Path, seed: int = 7, **overrides: Any) -> SimulationConfig:
    return SimulationConfig(out=out, customers=300, days=90, seed=seed, **overrides)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    for suffix in (".csv", ".csv.xz"):
        first = simulate(_small(tmp_path / f"a{suffix}"))
        again = simulate(_small(tmp_path / f"b{suffix}"))
        other = simulate(_small(tmp_path / f"c{suffix}", seed=8))
        assert first.path.read_bytes() == again.path.read_bytes()
        assert first.truth_path.read_bytes() == again.truth_path.read_bytes()
        assert first.path.read_bytes() != other.path.read_bytes()
    text = (tmp_path / "a.csv").read_text()
    assert text.startswith(HEADER + "\n")
    row = pd.read_csv(tmp_path / "a.csv", dtype=str, keep_default_na=False)
    assert row["InvoiceDate"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
    customers = row.loc[row["CustomerID"] != "", "CustomerID"]
    assert customers.str.fullmatch(r"\d{5}\.0").all()
    assert 0.2 < (row["CustomerID"] == "").mean() < 0.3
    assert {"POST", "M"} <= set(row["StockCode"])
    assert row["InvoiceNo"].str.startswith("C").any()
    truth = json.loads(first.truth_path.read_text())
    assert set(truth["customers"].values()) == {a.name for a in ARCHETYPES}
    assert len(truth["customers"]) == 300


def test_file_passes_the_readers_and_the_replay_cli_without_dead_letters(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = simulate(_small(tmp_path / "sim.csv.xz"))
    assert sum(len(chunk) for chunk in open_rows(result.path)) == result.lines
    for name, value in {
        "SEG_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SEG_TOPICS__INVOICES": settings.topics.invoices,
        "SEG_TOPICS__DEAD_LETTER": settings.topics.dead_letter,
        "SEG_TOPICS__PARTITIONS": "3",
    }.items():
        monkeypatch.setenv(name, value)
    code = producer_main(["replay", str(result.path), "--checkpoint", str(tmp_path / "cp.json"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dead-lettered 0 (none)" in out, out
    assert f"{result.lines:,}" in out or str(result.lines) in out, out


def _log_order_values(path: Path) -> pd.DataFrame:
    """Event time and log value of each customer purchase invoice (product lines only)."""
    rows = pd.read_csv(path, dtype={"CustomerID": str, "InvoiceNo": str}, parse_dates=["InvoiceDate"])
    rows = rows[
        rows["CustomerID"].notna() & ~rows["InvoiceNo"].str.startswith("C") & ~rows["StockCode"].isin(["POST", "M"])
    ]
    rows = rows.assign(value=rows["Quantity"] * rows["UnitPrice"])
    invoices = rows.groupby("InvoiceNo").agg(at=("InvoiceDate", "first"), value=("value", "sum"))
    return invoices.assign(log_value=np.log(invoices["value"]))


def test_order_value_drift_shifts_log_order_value_by_the_requested_sigmas(tmp_path: Path) -> None:
    config = SimulationConfig(out=tmp_path / "base.csv", customers=1500)
    base = simulate(config)
    drifted = simulate(
        SimulationConfig(
            out=tmp_path / "drift.csv",
            customers=1500,
            drift=(parse_drift("order-value-shift:2011-09-01:1.0"),),
        )
    )
    plain, shifted = _log_order_values(base.path), _log_order_values(drifted.path)
    sigma = plain.loc[plain["at"] < DRIFT_AT, "log_value"].std()
    late_plain = plain.loc[plain["at"] >= DRIFT_AT, "log_value"]
    late_shifted = shifted.loc[shifted["at"] >= DRIFT_AT, "log_value"]
    shift = (late_shifted.mean() - late_plain.mean()) / sigma
    print(f"\nrequested +1.0 sigma of log order value; measured {shift:+.3f} sigma")
    assert shift == pytest.approx(1.0, abs=0.1)


def test_churn_drift_stops_the_requested_share_of_loyal_customers(tmp_path: Path) -> None:
    drifted = simulate(
        SimulationConfig(out=tmp_path / "churn.csv", customers=1000, drift=(parse_drift("churn:2011-09-01:0.3"),))
    )
    truth = json.loads(drifted.truth_path.read_text())
    churn = next(note for note in truth["drift"] if note["kind"] == "churn")
    loyal = [cid for cid, name in truth["customers"].items() if name == "loyal"]
    assert len(churn["customers"]) == round(0.3 * len(loyal))
    rows = pd.read_csv(drifted.path, dtype={"CustomerID": str}, parse_dates=["InvoiceDate"])
    late = rows[rows["InvoiceDate"] >= DRIFT_AT]
    assert not set(late["CustomerID"].dropna().str.removesuffix(".0")) & set(churn["customers"])


def test_bootstrap_recovers_the_archetypes(redis_client: redis.Redis, settings: Settings, tmp_path: Path) -> None:
    config = SimulationConfig(out=tmp_path / "year.csv.xz")
    result = simulate(config)
    truth = json.loads(result.truth_path.read_text())["customers"]
    options = BootstrapSettings(k=len(ARCHETYPES), model_file=tmp_path / "model.json")
    until = config.start + timedelta(days=config.days)
    fitted = run_bootstrap(
        result.path,
        until,
        redis_client,
        Keys(settings.redis.key_prefix),
        options,
        partitions=settings.topics.partitions,
    )
    archetypes = [truth[str(cid)] for cid in fitted.features.index]
    ari = adjusted_rand_score(archetypes, fitted.segments)
    print(f"\nsegment recovery: {result.lines:,} lines, {len(archetypes):,} customers, k={options.k}, ARI={ari:.3f}")
    assert ari >= 0.6
