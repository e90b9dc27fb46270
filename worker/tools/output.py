"""Output for the tools: fixed-width tables for people, JSON lines for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def json_line(value: Any) -> str:
    """One compact JSON document on one line (datetimes and other objects as strings)."""
    return json.dumps(value, default=str, separators=(",", ":"))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns as wide as their widest cell; numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) and bool(rows) for i in range(len(headers))]
    lines = [_join(headers, widths, [False] * len(headers)), _join(["-" * w for w in widths], widths, numeric)]
    lines.extend(_join(row, widths, numeric) for row in cells)
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def _join(cells: Sequence[str], widths: list[int], numeric: list[bool]) -> str:
    parts = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(cells, widths, numeric, strict=True)]
    return "  ".join(parts).rstrip()
