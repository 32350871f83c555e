"""A finished training run, read from its directory without torch.

A training run directory (docs/learning.md) ends with ``result.json`` (how it ended) beside
``metrics.jsonl`` (one row per epoch). :func:`finished_run` reads both and checks they agree, so
that `hwsim compare` and `hwsim report` can reuse a run — price it on another chip, report it
again — without importing torch or touching its checkpoint. ``hwsim.models.training`` writes these
files and reads them back through the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.files import read_json, read_jsonl
from hwsim.core.layer_names import rename_layer_keys, run_layer_renames

METRICS_EXPECTED = "one JSON object per epoch (docs/learning.md)"


@dataclass(frozen=True)
class RunResult:
    """How a run ended, and its headline numbers."""

    out_dir: Path
    status: str  # "completed" or "diverged"
    epochs_completed: int
    final_test_accuracy: float | None
    best_test_accuracy: float | None
    metrics: list[dict[str, Any]]

    @property
    def diverged(self) -> bool:
        """True when a non-finite loss ended the run early."""
        return self.status == "diverged"


def read_metrics(
    run_dir: str | Path, *, missing_ok: bool = False, drop_torn_tail: bool = False
) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl``, one per epoch (epoch 0 = before training).

    Each row is checked to hold what the run's results are made of: an integer ``epoch``
    (0, 1, 2, ... in order), a numeric ``test_accuracy`` and a boolean ``diverged`` (when present);
    anything else is an :class:`InputError` naming ``metrics.jsonl`` and the row. With
    ``drop_torn_tail``, a last line cut off by a crash is dropped (see :func:`read_jsonl`).
    A run written before layers were named ``fc1``/``conv1`` gets the new names in its layer keys
    (:func:`hwsim.core.layer_names.run_layer_renames`); the file is not changed.
    """
    path = Path(run_dir) / "metrics.jsonl"
    rows = read_jsonl(path, METRICS_EXPECTED, missing_ok=missing_ok, drop_torn_tail=drop_torn_tail)
    for number, row in enumerate(rows):
        where = f"{path}: row {number + 1}"
        epoch = row.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise InputError(
                f"{where}: 'epoch' = {epoch!r}: expected an integer; {METRICS_EXPECTED}"
            )
        if epoch != number:
            raise InputError(
                f"{where}: 'epoch' = {epoch}: expected {number} (one row per epoch, in order)"
            )
        accuracy = row.get("test_accuracy")
        if isinstance(accuracy, bool) or not isinstance(accuracy, int | float):
            raise InputError(f"{where}: 'test_accuracy' = {accuracy!r}: expected a number")
        if not isinstance(row.get("diverged", False), bool):
            raise InputError(f"{where}: 'diverged' = {row['diverged']!r}: expected true or false")
    rename_layer_keys(rows, run_layer_renames(run_dir))
    return rows


def run_result(out: Path, status: str, rows: list[dict[str, Any]]) -> RunResult:
    """The :class:`RunResult` of a run that ended with ``status`` after metrics ``rows``."""
    finished = [r for r in rows if not r.get("diverged")]
    return RunResult(
        out_dir=out,
        status=status,
        epochs_completed=max((r["epoch"] for r in finished), default=0),
        # The weights the run ended with, a diverged last epoch included: divergence is a
        # failure to learn and must count as one wherever runs are compared (docs/learning.md).
        final_test_accuracy=rows[-1]["test_accuracy"] if rows else None,
        best_test_accuracy=max((r["test_accuracy"] for r in finished), default=None),
        metrics=rows,
    )


def recover_hint(path: Path, deleting: str) -> str:
    """How to get past a damaged file of a run directory, appended to its error."""
    return (
        f"delete {path.name} to {deleting}, or pass --force to start the run over "
        f"(removes the run's files in {path.parent})"
    )


def read_result(path: Path) -> tuple[str, int]:
    """``(status, last epoch with a metrics row)`` of a run's ``result.json``, checked."""
    hint = recover_hint(path, "finish the run again from its checkpoint")
    try:
        raw = read_json(path, "the result of a finished training run")
    except InputError as exc:
        raise InputError(f"{exc}; {hint}") from None
    status = raw.get("status") if isinstance(raw, dict) else None
    epochs = raw.get("epochs_completed") if isinstance(raw, dict) else None
    if status not in ("completed", "diverged"):
        raise InputError(f"{path}: 'status' = {status!r}: expected completed or diverged; {hint}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise InputError(
            f"{path}: 'epochs_completed' = {epochs!r}: expected a non-negative integer; {hint}"
        )
    return status, epochs + (status == "diverged")


def finished_run(run_dir: str | Path) -> RunResult | None:
    """The result of the finished run in ``run_dir``, or None when it has not finished.

    Finished means ``result.json`` says how the run ended and ``metrics.jsonl`` holds every row
    up to that epoch; anything less (no run yet, a run cut short, a torn metrics tail that the
    next :func:`hwsim.models.training.train` repairs) is None, and the caller trains. A damaged
    ``result.json`` or metrics row is an :class:`InputError` naming the file.
    """
    out = Path(run_dir)
    path = out / "result.json"
    if not path.is_file():
        return None
    status, last_epoch = read_result(path)
    rows = read_metrics(out, missing_ok=True)
    if not rows or rows[-1]["epoch"] < last_epoch:
        return None
    return run_result(out, status, rows[: last_epoch + 1])
