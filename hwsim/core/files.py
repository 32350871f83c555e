"""Files: atomic writes, JSON and JSON lines read with clear errors, and the output-dir guard.

Torch-free. Every file hwsim writes goes through :func:`write_atomic` or :func:`append_jsonl`;
every JSON-lines file is read by :func:`read_jsonl`; every command that writes a directory asks
:func:`claim_out_dir` first.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError


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


def read_text(path: str | Path, expected: str) -> str:
    """The text of ``path``; an :class:`InputError` naming the file and what was ``expected``."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: missing; expected {expected}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc}); expected {expected}") from None


def read_json(path: str | Path, expected: str) -> Any:
    """The JSON document in ``path``; bad JSON is an :class:`InputError` with its line."""
    try:
        return json.loads(read_text(path, expected))
    except json.JSONDecodeError as exc:
        message = f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); expected {expected}"
        raise InputError(message) from None


def read_jsonl(
    path: str | Path, expected: str, *, missing_ok: bool = False, drop_torn_tail: bool = False
) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (``metrics.jsonl``, ``points.jsonl``), in order.

    Blank lines are skipped; a line that is no JSON object is an :class:`InputError` naming
    ``path:line``. A missing file is an error too, or ``[]`` with ``missing_ok``. With
    ``drop_torn_tail``, a last line cut off by a crash mid-append (no newline at the end) is
    dropped from the file, so that the record it was writing is written again.
    """
    path = Path(path)
    if missing_ok and not path.exists():
        return []
    text = read_text(path, expected)
    if drop_torn_tail and text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        write_atomic(path, text)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"{path}:{number}: invalid JSON ({exc.msg}); expected {expected}"
            raise InputError(message) from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: not a JSON object; expected {expected}")
        rows.append(row)
    return rows


def append_jsonl(path: str | Path, record: Any) -> None:
    """Append ``record`` as one JSON line, flushed and fsynced before returning.

    A crash mid-append can only leave a torn last line, which :func:`read_jsonl` drops with
    ``drop_torn_tail``.
    """
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def claim_out_dir(
    out: Path,
    *,
    what: str,
    identity_file: str,
    identity: Any,
    load: Callable[[str], Any],
    owned: Sequence[str],
    force: bool,
    finished: str | None = None,
) -> None:
    """The one guard before hwsim writes into an output directory ``out``.

    ``out`` holds a ``what`` (a compare run, a sweep, a training run, a reproduction) identified
    by the file ``identity_file``, whose text ``load`` turns into a value to compare with
    ``identity``; ``owned`` are the files and directories such a directory holds (hwsim's own).

    - ``out`` exists but is no directory: refused.
    - ``force``: the ``owned`` entries are removed (nothing else in ``out`` is touched), and the
      caller starts over.
    - ``finished`` names a file that marks a finished ``what``: refused (pass ``force``).
    - ``identity_file`` exists and does not load to ``identity``: refused, it is another ``what``.
    - no ``identity_file`` but other ``owned`` entries: refused, it holds output of unknown origin.

    Otherwise the caller may write (and resume what is there). Refusals are
    :class:`InputError`\\ s naming ``out``.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    if force:
        for name in owned:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        return
    if finished is not None and (out / finished).exists():
        raise InputError(
            f"{out} already holds a finished {what} ({finished}); pass --force to overwrite it, "
            "or choose another --out"
        )
    identity_path = out / identity_file
    if identity_path.exists():
        try:
            previous = load(identity_path.read_text(encoding="utf-8"))
        except (ValueError, InputError, OSError, UnicodeDecodeError):
            previous = None  # unreadable: cannot be the same
        if previous != identity:
            raise InputError(
                f"{out} holds a {what} with a different {identity_file} ({identity_path}); "
                "choose another --out, or pass --force to start over"
            )
        return
    present = [name for name in owned if (out / name).exists()]
    if present:
        raise InputError(
            f"{out} holds {what} output ({', '.join(present)}) but no {identity_file}; "
            "choose another --out, or pass --force to start over"
        )
