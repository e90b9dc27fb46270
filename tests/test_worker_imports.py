"""The streaming worker's process stays light: ``live-segments run`` imports neither pandas nor scikit-learn.

Why: every worker process pays for what it imports in resident memory (pandas alone
is about 100 MB), and the worker's hot path needs only numpy. The batch tools
(bootstrap, refit, drift, replay) import them when they run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "sklearn", "scipy", "river")


def test_the_worker_command_and_its_stream_modules_import_no_batch_library() -> None:
    probe = (
        "import sys, worker.cli, worker.stream.loop, worker.stream.fetcher; "
        f"print(' '.join(name for name in {HEAVY!r} if name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
