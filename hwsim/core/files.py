"""Writing files so that a reader never sees half of one (torch-free)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, content: str | bytes) -> None:
    """Write ``path.tmp`` completely (flushed to disk), then rename it over ``path``.

    A crash or Ctrl-C leaves either the old file or the new one, never a mix; the temporary file
    is removed when the write fails. Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """``value`` ready for strict JSON: non-finite floats as None (JSON has no NaN), tuples as
    lists, mapping keys as strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
