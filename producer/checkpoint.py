"""Resume checkpoints: how many sequence numbers of one replay the broker acknowledged.

Why a fingerprint: a checkpoint is only valid for the exact same input bytes and
the same selection (window, limit, topics, ordering and validation limits);
anything else changes the sequence numbering, so a mismatching checkpoint is
ignored rather than trusted. Writes are atomic (temp file + rename), so a crash
leaves the old or the new checkpoint, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
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


class Checkpoint:
    """One checkpoint file bound to one fingerprint."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint

    @classmethod
    def in_dir(cls, directory: Path, fingerprint: str) -> Checkpoint:
        """The default location: one file per fingerprint under ``directory``."""
        return cls(directory / f"replay-{fingerprint[:16]}.json", fingerprint)

    def load(self) -> int:
        """Acknowledged count to resume after; 0 when absent, unreadable or for other input."""
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable checkpoint %s (%s)", self.path, exc)
            return 0
        if state.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint %s belongs to another input or selection; starting from scratch", self.path)
            return 0
        return int(state["acked"])

    def save(self, acked: int, complete: bool) -> None:
        """Atomically record that sequence numbers ``0 .. acked-1`` are delivered."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "fingerprint": self.fingerprint,
            "acked": acked,
            "complete": complete,
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
