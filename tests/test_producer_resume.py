"""Kill and resume: a SIGKILLed replay loses nothing; a SIGINTed one also duplicates nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from producer.validation import parse_row
from shared.exceptions import RecordError
from shared.readers import CANONICAL, open_rows
from shared.settings import Settings
from tests.test_producer_replay import cli_env, consume_all, message_count, run_cli, seq_of, start_cli

SLICE = 100_000


def expected_event_ids(dataset: Path, rows: int) -> set[str]:
    ids: set[str] = set()
    for chunk in open_rows(dataset):
        for values in chunk.itertuples(index=False, name=None):
            if rows == 0:
                return ids
            rows -= 1
            try:
                ids.add(parse_row(dict(zip(CANONICAL, values, strict=True))).event_id)
            except RecordError:
                continue
    return ids


def start_replay(dataset: Path, env: dict[str, str], limit: int) -> subprocess.Popen[str]:
    return start_cli("replay", str(dataset), "--limit", str(limit), "--quiet", env=env)


def wait_for_messages(settings: Settings, process: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 90
    while message_count(settings.kafka, settings.topics.invoices) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the replay never got going"
        time.sleep(0.05)


def checkpoint_state(tmp_path: Path) -> dict[str, Any]:
    [path] = (tmp_path / "checkpoints").glob("replay-*.json")
    return json.loads(path.read_text())


def test_sigkill_then_resume_delivers_every_row_and_only_re_sends_after_the_checkpoint(
    settings: Settings, dataset: Path, tmp_path: Path
) -> None:
    env = cli_env(settings, tmp_path) | {"SEG_PRODUCER_CHECKPOINT_INTERVAL_S": "0.2"}
    process = start_replay(dataset, env, SLICE)
    wait_for_messages(settings, process, 20_000)
    process.send_signal(signal.SIGKILL)
    process.wait()
    acked_at_kill = int(checkpoint_state(tmp_path)["acked"])
    on_topic_at_kill = len(consume_all(settings.kafka, settings.topics.invoices))
    assert 0 < acked_at_kill <= on_topic_at_kill < SLICE

    resumed = run_cli("replay", str(dataset), "--limit", str(SLICE), "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipped by resume {acked_at_kill}," in resumed.stdout

    records = consume_all(settings.kafka, settings.topics.invoices)
    assert {json.loads(r.value)["event_id"] for r in records} == expected_event_ids(dataset, SLICE)
    seqs = Counter(seq_of(r) for r in records)
    assert set(seqs) == set(range(SLICE))
    duplicated = [seq for seq, n in seqs.items() if n > 1]
    assert all(n <= 2 for n in seqs.values())
    assert all(seq >= acked_at_kill for seq in duplicated)
    assert len(duplicated) <= on_topic_at_kill - acked_at_kill
    assert checkpoint_state(tmp_path)["complete"] is True


def test_sigint_saves_the_checkpoint_and_resume_has_no_duplicates(
    settings: Settings, dataset: Path, tmp_path: Path
) -> None:
    env = cli_env(settings, tmp_path)
    limit = 60_000
    process = start_replay(dataset, env, limit)
    wait_for_messages(settings, process, 20_000)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "replay interrupted" in stdout
    state = checkpoint_state(tmp_path)
    assert state["complete"] is False
    assert state["acked"] == len(consume_all(settings.kafka, settings.topics.invoices)) < limit

    resumed = run_cli("replay", str(dataset), "--limit", str(limit), "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    seqs = Counter(seq_of(r) for r in consume_all(settings.kafka, settings.topics.invoices))
    assert seqs == Counter(range(limit))
