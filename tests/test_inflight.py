"""The background batch commit: one at a time, failures raised where the worker waits."""

from __future__ import annotations

import threading

import pytest

from worker.stream.inflight import InflightCommit


def test_a_commit_lands_in_the_background_and_settle_returns_what_it_landed() -> None:
    inflight: InflightCommit[str] = InflightCommit()
    release = threading.Event()

    def held() -> None:
        release.wait()

    inflight.submit(held, "batch 1")
    assert inflight.landing == "batch 1"  # the next step's read counts it as there already
    with pytest.raises(RuntimeError, match="still in flight"):
        inflight.submit(lambda: None, "batch 2")
    release.set()
    assert inflight.settle() == "batch 1"
    assert inflight.landing is None
    assert inflight.settle() is None
    inflight.close()


def test_a_failed_commit_is_raised_by_settle_and_forget_clears_everything() -> None:
    inflight: InflightCommit[str] = InflightCommit()

    def fail() -> None:
        raise ConnectionError("redis went away")

    inflight.submit(fail, "batch 1")
    inflight.wait()  # what a rebalance callback does: no raise
    with pytest.raises(ConnectionError):
        inflight.settle()
    inflight.submit(lambda: None, "batch 2")
    inflight.forget()
    assert inflight.settle() is None
    assert inflight.landing is None
    inflight.close()
