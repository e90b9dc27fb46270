"""Quiet when all is well: the demo and every command of a clean run print no warning or error.

A new user reads any WARNING, ERROR, Python warning or traceback as a failure, so a
clean run must not print one; kafka-python's own noise is folded (shared/logs.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import Settings, as_environment

ROOT = Path(__file__).resolve().parents[1]
ALARMING = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback|Warning\b")


def alarming_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ALARMING.search(line)]


@pytest.mark.services  # the demo starts its own broker and Redis
def test_a_short_demo_on_simulated_data_prints_no_warning_or_error(tmp_path: Path) -> None:
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "SEG_DATASET": str(tmp_path / "no-data-here.csv.xz"),
        "SEG_DEMO_CUSTOMERS": "300",
        "SEG_DEMO_DAYS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert "simulating 200 days" in done.stdout and "demo done" in done.stdout
    assert (tmp_path / "out" / "report.html").exists()
    assert alarming_lines(done.stderr) == []


def test_every_command_of_a_clean_run_is_quiet(settings: Settings, tmp_path: Path) -> None:
    """simulate, bootstrap, replay, run, monitor, refresh and the tools, as a user types them."""
    tag = settings.redis.key_prefix.rstrip(":")
    env = (
        os.environ | as_environment(settings) | {"SEG_WORKER_GROUP_ID": f"w-{tag}", "SEG_MONITOR_GROUP_ID": f"m-{tag}"}
    )
    data, cutoff = tmp_path / "sim.csv", "2011-06-01"

    def command(*args: str, expect: int = 0) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "worker", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        assert alarming_lines(done.stderr) == [], args
        return done.stdout

    command("simulate", "--out", str(data), "--customers", "300", "--days", "200", "--seed", "5")
    command("bootstrap", "--input", str(data), "--until", cutoff, "--k", "4", "--model-file", str(tmp_path / "m.json"))
    command("replay", str(data), "--start", cutoff, "--checkpoint", str(tmp_path / "replay.json"))
    command("run", "--until-caught-up")
    command("monitor", "--until-caught-up")
    assert "v2" in command("refresh")
    # After a refresh a different model is live: a plain bootstrap refuses (exit 2), --if-absent
    # is satisfied by any live model, so a start script that bootstraps first carries on.
    command("bootstrap", "--input", str(data), "--until", cutoff, "--k", "4", expect=2)
    assert "model v2 is live" in command("bootstrap", "--input", str(data), "--until", cutoff, "--if-absent")
    command("run", "--until-caught-up")
    for tool in (["segments"], ["models"], ["alerts", "--recent", "5"], ["changes", "--from-beginning", "--max", "3"]):
        command(*tool)
    command("report", "--out", str(tmp_path / "report.html"))
