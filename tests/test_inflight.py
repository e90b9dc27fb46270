"""The background batch commit: one at a time, failures raised where the worker waits."""

from __future__ import annotations

import threading

import pytest

from worker.stream.inflight import InflightCommit


def test_a_commit_lands_in_the_background_and_settle_returns_its_offsets() -> None:
    inflight = InflightCommit()
    release = threading.Event()

    def land() -> None:
        release.wait()

    inflight.submit(land, {0: 10}, frozenset({"a"}))
    with pytest.raises(RuntimeError, match="still in flight"):
        inflight.submit(lambda: None, {0: 20}, frozenset())
    release.set()
    assert inflight.settle() == {0: 10}
    assert inflight.event_ids == frozenset({"a"})  # kept for the next batch's duplicate check
    assert inflight.settle() == {}
    inflight.close()


def test_a_failed_commit_is_raised_by_settle_and_forget_clears_everything() -> None:
    inflight = InflightCommit()

    def fail() -> None:
        raise ConnectionError("redis went away")

    inflight.submit(fail, {1: 5}, frozenset({"b"}))
    inflight.wait()  # what a rebalance callback does: no raise
    with pytest.raises(ConnectionError):
        inflight.settle()
    inflight.submit(lambda: None, {1: 6}, frozenset({"c"}))
    inflight.forget()
    assert inflight.settle() == {}
    assert inflight.event_ids == frozenset()
    inflight.close()
