"""Copies of a run's ``metrics.jsonl`` for other tools: ``metrics.csv`` and TensorBoard events.

``metrics.jsonl`` stays the record (:mod:`hwsim.models.training` reads only it); the copies are
written from its rows whenever it is written, so they hold exactly what it holds:

- ``metrics.csv``: one row per epoch, flat columns. Nested objects are flattened with ``/``
  (``alignment_deg/fc1``); columns appear in the order the rows first name them; ``null`` (or a
  key a row lacks, such as ``update_angle_deg`` of a diverged epoch) is an empty cell; booleans
  are ``true``/``false``; numbers are written so that they read back to the same float. It is
  rewritten whole (atomically) with ``metrics.jsonl``, so a resume, a dropped torn line or a
  re-measured row leaves the two equal.
- ``tensorboard/``: event files with one scalar per flat column (``epoch`` is the step;
  ``diverged`` is 0 or 1; empty cells are left out). Written when the ``tensorboard`` package is
  installed (``pip install -e '.[tensorboard]'``) unless turned off: ``train(...,
  tensorboard=False)``, ``hwsim train --no-tensorboard`` or ``HWSIM_TENSORBOARD=0`` in the
  environment. Each training session starts the log afresh from the rows it resumes with, so
  after a resume it holds every epoch once. Writing it draws no random numbers and changes no
  number of the run.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.files import record_written, write_atomic

__all__ = [
    "CSV_NAME",
    "TENSORBOARD_DIR",
    "TENSORBOARD_ENV",
    "NoLog",
    "TensorBoardLog",
    "csv_columns",
    "flatten_row",
    "metrics_csv",
    "open_tensorboard",
    "parse_csv_cell",
    "read_metrics_csv",
    "tensorboard_available",
    "tensorboard_wanted",
    "write_metrics_csv",
]

CSV_NAME = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
#: ``0``/``off``/``false``/``no`` turns TensorBoard logging off, ``1``/``on``/``true``/``yes`` on.
TENSORBOARD_ENV = "HWSIM_TENSORBOARD"
_SEPARATOR = "/"
_ON, _OFF = ("1", "on", "true", "yes"), ("0", "off", "false", "no")
_noted = False


def flatten_row(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``row`` with nested objects flattened: ``{"a": {"b": 1}}`` → ``{"a/b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_row(value, name + _SEPARATOR))
        else:
            flat[name] = value
    return flat


def csv_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The flat columns of ``rows``, in the order the rows first name them."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(flatten_row(row)))
    return list(columns)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back to the same float
    return str(value)


def metrics_csv(rows: list[dict[str, Any]]) -> str:
    """The text of ``metrics.csv`` for ``rows`` (see the module docstring)."""
    columns = csv_columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        flat = flatten_row(row)
        writer.writerow([_cell(flat.get(column)) for column in columns])
    return buffer.getvalue()


def write_metrics_csv(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``RUN_DIR/metrics.csv`` atomically from ``rows`` (those of ``metrics.jsonl``)."""
    write_atomic(Path(run_dir) / CSV_NAME, metrics_csv(rows))


def parse_csv_cell(text: str) -> Any:
    """A cell of ``metrics.csv`` as the JSON value it was written from (empty → ``None``)."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_metrics_csv(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``RUN_DIR/metrics.csv``, flat (``alignment_deg/fc1``), cells parsed by
    :func:`parse_csv_cell`; an empty cell is ``None``."""
    path = Path(run_dir) / CSV_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        columns = next(reader)
    except StopIteration:
        raise InputError(f"{path}: empty (expected a header line)") from None
    rows = []
    for number, cells in enumerate(reader, start=2):
        if len(cells) != len(columns):
            raise InputError(f"{path}:{number}: {len(cells)} cells, the header has {len(columns)}")
        rows.append({c: parse_csv_cell(v) for c, v in zip(columns, cells, strict=True)})
    return rows


# --------------------------------------------------------------------------- TensorBoard


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can write events here (the package is installed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception:  # not installed, or an install that cannot load (protobuf, numpy mismatch)
        return False
    return True


def tensorboard_wanted(setting: bool | None) -> bool:
    """Whether a run writes TensorBoard events: ``setting`` when given, else the environment
    variable :data:`TENSORBOARD_ENV` when set, else whenever the package is installed.

    Asked for (by either) without the package installed: a one-time warning, and no events.
    """
    global _noted
    if setting is None:
        raw = os.environ.get(TENSORBOARD_ENV, "").strip().lower()
        if raw in _OFF:
            return False
        if raw and raw not in _ON:
            raise InputError(
                f"{TENSORBOARD_ENV}={raw!r}: expected one of {', '.join(_ON + _OFF)} (or unset)"
            )
        if not raw:
            return tensorboard_available()
    elif not setting:
        return False
    if tensorboard_available():
        return True
    if not _noted:
        _noted = True
        warnings.warn(
            "TensorBoard logging was asked for, but the tensorboard package is not installed "
            "(pip install -c constraints.txt -e '.[tensorboard]'); writing metrics.jsonl and "
            "metrics.csv only",
            stacklevel=2,
        )
    return False


class TensorBoardLog:
    """The TensorBoard event log of one training session, in ``RUN_DIR/tensorboard/``.

    Opening it removes the event files a previous session left (the rows it is then given
    rewrite them), so the log holds each epoch once; the new file is listed in the run
    directory's manifest (:func:`hwsim.core.files.record_written`), so ``--force`` removes it.
    """

    def __init__(self, run_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        if self.log_dir.is_dir():
            for old in self.log_dir.glob("events.out.tfevents.*"):
                old.unlink()
        self._writer = SummaryWriter(log_dir=str(self.log_dir))
        for path in self.log_dir.glob("events.out.tfevents.*"):  # the one just created
            record_written(path)  # the run's manifest: --force removes it with the rest

    def write(self, row: Mapping[str, Any]) -> None:
        """Log one metrics row as scalars at step ``row["epoch"]``, and flush."""
        step = int(row["epoch"])
        for tag, value in flatten_row(row).items():
            if tag == "epoch" or value is None or isinstance(value, str):
                continue
            number = float(value)
            if math.isfinite(number):
                self._writer.add_scalar(tag, number, step)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()


class NoLog:
    """What a session logs to with TensorBoard off: nothing."""

    def write(self, row: Mapping[str, Any]) -> None:
        """Log nothing."""

    def close(self) -> None:
        """Nothing to close."""


def open_tensorboard(run_dir: str | Path, setting: bool | None) -> TensorBoardLog | NoLog:
    """The session's TensorBoard log, or a :class:`NoLog` when not wanted
    (:func:`tensorboard_wanted`)."""
    return TensorBoardLog(run_dir) if tensorboard_wanted(setting) else NoLog()
