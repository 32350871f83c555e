"""Files: atomic writes, JSON and JSON lines read with clear errors, and the output-dir guard.

Torch-free. Every file hwsim writes goes through :func:`write_atomic` or :func:`append_jsonl`;
every JSON-lines file is read by :func:`read_jsonl`; every command that writes a directory asks
:func:`claim_out_dir` first.

A directory hwsim claims holds a manifest, :data:`MANIFEST`: one line per file hwsim wrote
there (relative path), appended by :func:`write_atomic` and :func:`append_jsonl` as they write.
``--force`` removes exactly those files (and the directories that are empty afterwards), so a
user's own files in the same directory are never touched. A claimed directory inside another
(a training run inside a compare run) keeps its own manifest, listed in the outer one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
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
    # Listed before it is written: a kill mid-write leaves NAME.tmp, which --force then removes.
    record_written(path)
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


#: The file listing what hwsim wrote into a directory it claimed (see the module docstring).
MANIFEST = ".hwsim-manifest"


def _enclosing_manifest(path: Path) -> Path | None:
    # A manifest is listed in the one of the directory above its own.
    parents = path.parents[1:] if path.name == MANIFEST else path.parents
    for parent in parents:
        manifest = parent / MANIFEST
        if manifest.is_file():
            return manifest
    return None


def record_written(path: str | Path) -> None:
    """List ``path`` in the manifest of the nearest enclosing directory hwsim claimed (if any)."""
    path = Path(path).absolute()
    manifest = _enclosing_manifest(path)
    if manifest is None:
        return
    entry = path.relative_to(manifest.parent).as_posix()
    if entry not in manifest.read_text(encoding="utf-8").splitlines():
        with open(manifest, "a", encoding="utf-8") as handle:
            handle.write(entry + "\n")


def _remove_written(out: Path, keep: tuple[str, ...] = ()) -> None:
    """Remove every file ``out``'s manifest lists (nested claimed directories first), then the
    directories left empty; the manifest then lists only what was kept. Entries under a
    top-level name in ``keep`` are kept. Entries that would leave ``out`` (``..``, absolute
    paths, symlinks pointing elsewhere) are ignored."""
    manifest = out / MANIFEST
    root = out.resolve()
    listed = list(dict.fromkeys(manifest.read_text(encoding="utf-8").splitlines()))
    kept = [e for e in listed if e and Path(e).parts[0] in keep]
    entries = [e for e in listed if e not in kept]
    for entry in entries:
        relative = Path(entry)
        if not entry or relative.is_absolute() or ".." in relative.parts:
            continue
        target = out / relative
        if root not in target.resolve().parents:
            continue
        if target.name == MANIFEST:
            if target.is_file():
                _remove_written(target.parent)
                target.unlink()
            continue
        target.unlink(missing_ok=True)
        target.with_name(target.name + ".tmp").unlink(missing_ok=True)
    for entry in entries:
        for parent in (out / entry).parents:
            if parent == out or root not in parent.resolve().parents:
                break
            try:
                parent.rmdir()  # only succeeds when empty: a user's file keeps its directory
            except OSError:
                break
    manifest.write_text("".join(e + "\n" for e in kept), encoding="utf-8")


def _start_manifest(out: Path) -> None:
    """Create ``out`` (and its parents) and its manifest; unwritable paths are InputErrors."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / MANIFEST).is_file():
            write_atomic(out / MANIFEST, "")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(f"--out {out}: cannot write there ({reason})") from None


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
    record_written(path)


def claim_out_dir(
    out: Path,
    *,
    what: str,
    identity_file: str,
    identity: Any,
    load: Callable[[str], Any],
    force: bool,
    finished: str | None = None,
    keep: tuple[str, ...] = (),
) -> None:
    """The one guard before hwsim writes into an output directory ``out``; creates it.

    ``out`` holds a ``what`` (a compare run, a sweep, a training run, a reproduction) identified
    by the file ``identity_file``, whose text ``load`` turns into a value to compare with
    ``identity``. Refusals are :class:`InputError` s naming ``out``:

    - ``out`` exists but is no directory, or cannot be created or written: refused.
    - ``force``: the files hwsim wrote there (its manifest) are removed, nothing else, and the
      caller starts over; those under a top-level name in ``keep`` stay (a compare run keeps
      its trained runs, which are keyed by what determines them). A non-empty directory
      without a manifest holds nothing of hwsim's: refused, since nothing in it may be
      replaced.
    - ``finished`` names a file that marks a finished ``what``: refused (pass ``force``).
    - ``identity_file`` exists and does not load to ``identity``: refused, it is another ``what``.
    - otherwise a directory with files hwsim did not write (no manifest, no identity file) is
      refused; a new or empty one, or hwsim's own unfinished ``what``, is taken (to resume).
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    ours = (out / MANIFEST).is_file()
    foreign = out.is_dir() and any(entry.name != MANIFEST for entry in out.iterdir())
    if force:
        if ours:
            _remove_written(out, keep)
        elif foreign:
            raise InputError(
                f"--out {out} is not empty and holds nothing hwsim wrote (no {MANIFEST}); "
                "--force only replaces hwsim's own files: choose an empty or new --out"
            )
        _start_manifest(out)
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
    elif foreign and not ours:
        raise InputError(
            f"--out {out} is not empty and is not a {what} hwsim wrote (no {identity_file}, "
            f"no {MANIFEST}): choose an empty or new --out"
        )
    _start_manifest(out)
