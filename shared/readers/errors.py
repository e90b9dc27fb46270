"""Turn low-level read failures into :class:`CorruptInputError` with a fix in the message.

Why one place: the CSV, Excel and Parquet readers fail with a zoo of library
exceptions (``EOFError`` from a truncated ``.xz``, ``UnicodeDecodeError``, Arrow
errors…); the caller should see one error class that says what to do next.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from shared.exceptions import CorruptInputError


@contextmanager
def corruption_guard(path: Path, encoding: str | None = None) -> Iterator[None]:
    """Re-raise read failures inside the block as :class:`CorruptInputError`."""
    try:
        yield
    except UnicodeDecodeError as exc:
        other = "latin-1" if (encoding or "").lower().replace("_", "-") in {"utf-8", "utf8"} else "utf-8"
        raise CorruptInputError(
            f"{path}: bytes at position {exc.start} are not valid {encoding} ({exc.reason}); "
            f"pass --encoding {other} (or the file's real encoding)"
        ) from exc
    except (EOFError, lzma.LZMAError, zlib.error) as exc:
        raise CorruptInputError(
            f"{path}: the compressed file is truncated or damaged ({exc}); re-download or re-compress it"
        ) from exc
    except pd.errors.ParserError as exc:
        raise CorruptInputError(f"{path}: not a well-formed CSV ({exc}); fix or remove the broken lines") from exc
    except OSError as exc:  # gzip.BadGzipFile, bz2 "Invalid data stream", unreadable file
        raise CorruptInputError(f"{path}: cannot be read ({exc}); check the file and its suffix") from exc
