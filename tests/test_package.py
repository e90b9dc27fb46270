"""The package a new team installs: the wheel holds the runtime only and gives a working ``live-segments``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("shared", "producer", "worker")


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    return done


@pytest.mark.services  # installs the runtime dependencies from the package index into a fresh venv
def test_the_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    source = tmp_path / "source"  # exactly what the build needs, so nothing else can leak in
    for name in RUNTIME:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp_path / "dist", source, cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("live_segments-*.whl")

    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if not name.startswith("live_segments-")} == set(RUNTIME)
    assert all(f"{package}/py.typed" in names for package in RUNTIME)
    assert (
        "live-segments = worker.cli:main"
        in zipfile.ZipFile(wheel).read(next(name for name in names if name.endswith("entry_points.txt"))).decode()
    )

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run(*pip, "--constraint", ROOT / "requirements.txt", wheel, cwd=tmp_path)

    outside = tmp_path / "elsewhere"  # no checkout on sys.path: only the installed package can answer
    outside.mkdir()
    where = run(venv / "bin" / "python", "-c", "import worker, producer; print(worker.__file__)", cwd=outside)
    assert "site-packages" in where.stdout
    usage = run(venv / "bin" / "live-segments", "--help", cwd=outside).stdout
    for command in ("replay", "simulate", "bootstrap", "run", "monitor", "refresh", "alerts", "report"):
        assert re.search(rf"^    {command}\b", usage, re.MULTILINE), command
    simulated = run(
        venv / "bin" / "live-segments", "simulate", "--out", "sim.csv", "--customers", "40", "--days", "30", cwd=outside
    )
    assert "wrote" in simulated.stdout
    assert (outside / "sim.csv").read_text().splitlines()[0].startswith("InvoiceNo,StockCode")
    assert (outside / "sim.csv.truth.json").exists()
