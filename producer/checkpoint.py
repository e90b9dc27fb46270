"""Resume checkpoints: how many sequence numbers of one replay the broker acknowledged, and where.

Why a fingerprint: a checkpoint is only valid for the exact same input bytes and
the same selection (window, limit, topics, ordering and validation limits);
anything else changes the sequence numbering, so a mismatching checkpoint is
ignored rather than trusted. Why an identity: the acknowledged messages are on
one cluster, in one incarnation of each topic; the checkpoint names them (cluster
id, topic ids and partition counts) and records where the acknowledged prefix
ends in each partition, so :mod:`producer.target` can tell whether the broker
still holds them. Writes are atomic (temp file + rename), so a crash leaves the
old or the new checkpoint, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.exceptions import InputError

log = logging.getLogger(__name__)


def fingerprint(path: Path, selection: dict[str, Any]) -> str:
    """Hash of the input's identity (path, size, mtime) and of what is replayed from it."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from exc
    identity = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns} | selection
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Saved:
    """A loaded checkpoint: ``acked`` messages delivered to ``identity`` (None if unknown), ending at ``ends``.

    ``ends[topic][partition]`` is the offset after the last acknowledged message
    of the prefix in that partition.
    """

    acked: int = 0
    identity: dict[str, Any] | None = None
    ends: dict[str, dict[int, int]] = field(default_factory=dict)


class Checkpoint:
    """One checkpoint file bound to one fingerprint."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint

    @classmethod
    def in_dir(cls, directory: Path, fingerprint: str) -> Checkpoint:
        """The default location: one file per fingerprint under ``directory``."""
        return cls(directory / f"replay-{fingerprint[:16]}.json", fingerprint)

    def load(self) -> Saved:
        """What to resume after; nothing acknowledged when absent, unreadable or for other input."""
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return Saved()
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable checkpoint %s (%s)", self.path, exc)
            return Saved()
        if state.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint %s belongs to another input or selection; starting from scratch", self.path)
            return Saved()
        ends = {
            topic: {int(partition): end for partition, end in by_partition.items()}
            for topic, by_partition in state.get("ends", {}).items()
        }
        return Saved(int(state["acked"]), state.get("target"), ends)

    def save(
        self, acked: int, complete: bool, identity: dict[str, Any] | None, ends: dict[tuple[str, int], int]
    ) -> None:
        """Atomically record that messages ``0 .. acked-1`` are delivered to ``identity``, ending at ``ends``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        by_topic: dict[str, dict[str, int]] = {}
        for (topic, partition), end in sorted(ends.items()):
            by_topic.setdefault(topic, {})[str(partition)] = end
        state = {
            "fingerprint": self.fingerprint,
            "acked": acked,
            "complete": complete,
            "target": identity,
            "ends": by_topic,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
