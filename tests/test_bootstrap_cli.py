"""The command line, and the failure cases, on small synthetic files."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis

from shared.exceptions import EmptyInputError, ModelError
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.layout import partition_count
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
START = datetime(2011, 1, 3, 9, 0)


def synthetic_rows(customers: int, guests: bool = True) -> list[list[str]]:
    """Customers with different habits, plus one of each cleaning case."""
    rows = []
    for number in range(customers):
        customer = f"{12346 + number}.0"
        for order in range(1 + number % 4):
            moment = START + timedelta(days=3 * number + 20 * order, hours=order)
            invoice = f"{540000 + number * 10 + order}"
            for line in range(1 + number % 3):
                price = f"{1.25 * (1 + line + number % 5):.2f}"
                rows.append(
                    [
                        invoice,
                        f"2{line}000",
                        "THING",
                        str(2 + number),
                        f"{moment:%Y-%m-%d %H:%M:%S}",
                        price,
                        customer,
                        "United Kingdom",
                    ]
                )
    rows.append(rows[0])  # exact duplicate
    rows.append(["C549999", "20000", "THING", "-2", "2011-03-01 10:00:00", "1.25", "12346.0", "United Kingdom"])
    rows.append(["549998", "POST", "POSTAGE", "1", "2011-03-01 11:00:00", "18.00", "12347.0", "France"])
    rows.append(["549997", "20000", "THING", "1", "2011-03-01 12:00:00", "0", "12348.0", "United Kingdom"])
    if guests:
        rows.append(["549996", "20000", "THING", "3", "2011-03-02 12:00:00", "2.10", "", "United Kingdom"])
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def test_help_lists_every_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "bootstrap", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    for option in ("--input", "--until", "--k", "--k-min", "--k-max", "--seed", "--force", "--model-file"):
        assert option in done.stdout


def test_cli_run_on_synthetic_file(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "history.csv", synthetic_rows(30))
    env = {
        **os.environ,
        "SEG_REDIS__URL": settings.redis.url,
        "SEG_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "worker", "bootstrap", "--input", str(source), "--until", "2011-06-01"]
    options = ["--k-min", "2", "--k-max", "4", "--model-file", str(tmp_path / "model.json")]
    done = subprocess.run(command + options, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "bootstrap installed: model v1" in done.stdout and "segments" in done.stdout
    assert (tmp_path / "model.json").exists()
    keys = Keys(settings.redis.key_prefix)
    assert sum(redis_client.scard(keys.customers(p)) for p in range(partition_count(redis_client, keys))) == 30

    refused = subprocess.run([*command, "--k", "3", *options], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: model v1") and "--force" in refused.stderr


@pytest.mark.parametrize(
    ("rows", "until", "k", "error", "message"),
    [
        (synthetic_rows(10), datetime(2010, 12, 1), None, EmptyInputError, "no rows before"),
        (synthetic_rows(3), datetime(2011, 6, 1), 3, ModelError, "only 3 customers"),
        (
            [[*row[:6], "", row[7]] for row in synthetic_rows(10)],
            datetime(2011, 6, 1),
            None,
            EmptyInputError,
            "only guest rows",
        ),
    ],
    ids=["empty-window", "fewer-customers-than-k", "all-guests"],
)
def test_unusable_windows_fail_clearly(
    rows: list[list[str]],
    until: datetime,
    k: int | None,
    error: type[Exception],
    message: str,
    settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    source = write_csv(tmp_path / "history.csv", rows)
    options = BootstrapSettings(k=k, model_file=tmp_path / "model.json")
    with pytest.raises(error, match=message):
        run_bootstrap(source, until, redis_client, Keys(settings.redis.key_prefix), options, partitions=3)
    assert not list(redis_client.scan_iter(match=settings.redis.key_prefix + "*"))
