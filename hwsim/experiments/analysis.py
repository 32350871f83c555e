"""The analyses of one training run directory: what ``hwsim analyze`` computes and writes.

Each ``analyze_*`` function reads a run directory written by :func:`hwsim.models.training.train`,
runs the numerical core of :mod:`hwsim.models.analysis` on it and writes
``RUN_DIR/analysis/<name>.json`` (atomically: ``name.tmp`` then ``os.replace``). Each returns
exactly the dictionary it wrote. Every result is deterministic given ``seed`` (and the run).
Nothing here draws: the figure ``RUN_DIR/analysis/<name>.png`` is drawn from the JSON by
:mod:`hwsim.render.analysis` (``hwsim analyze`` does both).

- ``hessian`` (:func:`analyze_curvature`): Hutchinson trace, top-k eigenvalues (Lanczos) and the
  spectral density (stochastic Lanczos quadrature) of the training loss, at the final weights and
  at chosen epochs (from ``snapshots/``).
- ``landscape`` (:func:`analyze_landscape`): the loss on a grid along the top-2 Hessian
  eigenvectors around the final weights, and the training trajectory on its first two principal
  components with the loss along it.
- ``alignment`` (:func:`analyze_alignment`): W-vs-B angle per layer and update-vs-gradient angle
  over training, as recorded in ``metrics.jsonl`` (nothing is recomputed).
- ``robustness`` (:func:`analyze_robustness`): accuracy under corruptions at severities 1–5, and
  under FGSM/PGD white-box through the true gradient and through the model's own feedback, plus a
  black-box transfer attack from a BP-trained surrogate.

Every gradient-based analysis runs on the BP view (:func:`hwsim.models.convert.bp_view`) of the
model in eval mode: autograd through a feedback-alignment layer is the FA update, not the gradient
(docs/analyses.md). Curvature and landscape use the first ``samples`` training samples (the
training split is already shuffled by ``data_seed``) in batches of ``batch_size``, and the mean
cross-entropy; robustness uses the first ``samples`` test samples.
"""

from __future__ import annotations

import inspect
import json
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from hwsim.core.errors import InputError
from hwsim.core.files import jsonable, read_text, write_atomic
from hwsim.core.outputs import ANALYSIS_DIR
from hwsim.core.stats import finite, mean_std
from hwsim.models.analysis.attacks import adversarial_accuracy, input_gradient_fn, transfer_accuracy
from hwsim.models.analysis.corruptions import CORRUPTION_NAMES, corruption_accuracy
from hwsim.models.analysis.evaluation import accuracy
from hwsim.models.analysis.hessian import (
    HessianOperator,
    get_flat_parameters,
    hutchinson_trace,
    spectral_density,
    top_eigenvalues,
)
from hwsim.models.analysis.landscape import loss_surface, trajectory_pca
from hwsim.models.config import TrainConfig
from hwsim.models.convert import bp_view
from hwsim.models.data import Dataset
from hwsim.models.device import resolve_device
from hwsim.models.training import (
    build_model,
    kept_epochs,
    load_checkpoint,
    load_run,
    load_weights,
    read_metrics,
    snapshot_path,
    train,
)

__all__ = [
    "ANALYSES",
    "ANALYSIS_DIR",
    "DEFAULT_EPS",
    "RESULT_VERSION",
    "analysis_files",
    "analysis_names",
    "analyze",
    "analyze_alignment",
    "analyze_curvature",
    "analyze_landscape",
    "analyze_robustness",
]

#: The analyses by the name ``hwsim analyze`` and :func:`analyze` take (``all`` runs each).
ANALYSES = ("hessian", "landscape", "alignment", "robustness")
#: Where a run directory keeps analysis results.
#: Schema version of every analysis JSON file.
RESULT_VERSION = 1
#: L∞ radii of the attacks, in input units ([0, 1] pixel intensity for images). ε = 0 is the
#: clean accuracy, a built-in check of the attack pipeline.
DEFAULT_EPS = (0.0, 0.01, 0.03, 0.1, 0.2)
#: Relative residual at which Lanczos stops: the HVPs are float32, so the core's 1e-6 is below
#: their rounding noise and would always run to the step limit. An eigenvalue's error is about
#: residual² / gap, far below 1e-4 relative.
EIGEN_TOL = 1e-4
#: ``status`` of an ``at_loss`` block (:func:`analyze_curvature`).
MEASURED, NEVER_REACHED, NO_SNAPSHOT = "measured", "never reached", "no snapshot"
#: How the epoch of an ``at_loss`` measurement is chosen (recorded in ``hessian.json``).
AT_LOSS_CRITERION = (
    "the first epoch whose training loss (metrics.jsonl train_loss: mean cross-entropy over the "
    "whole training split, eval mode, after that epoch) is at most the level; diverged epochs "
    "are left out"
)
#: Grid points of the smoothed spectral density kept in hessian.json.
DENSITY_GRID_POINTS = 400
#: Where a surrogate trained by :func:`analyze_robustness` goes, inside the run directory.
SURROGATE_DIR = f"{ANALYSIS_DIR}/surrogate"
#: Offset of the surrogate's seed from the run's, so it is a different network.
SURROGATE_SEED_OFFSET = 1

_LOSS = "mean cross-entropy"
_VIEW = "bp: the same forward weights with true gradients (hwsim.models.convert.bp_view), eval mode"


# --------------------------------------------------------------------------- reading the run


def analysis_files(run_dir: str | Path, what: str) -> tuple[Path, Path]:
    """``(json, png)`` paths of analysis ``what`` in ``run_dir``: the result the analysis writes,
    and the figure :func:`hwsim.render.analysis.write_analysis_figure` draws from it."""
    folder = Path(run_dir) / ANALYSIS_DIR
    return folder / f"{what}.json", folder / f"{what}.png"


def _require(run_dir: str | Path, names: Sequence[str]) -> Path:
    """The run directory, checked to exist and to hold the files ``names``."""
    run = Path(run_dir)
    if not run.exists():
        raise InputError(f"run directory {run} does not exist")
    if not run.is_dir():
        raise InputError(f"{run} is not a directory (expected a `hwsim train` run directory)")
    missing = [name for name in names if not (run / name).is_file()]
    if missing:
        raise InputError(
            f"{run} is not a training run directory: missing {', '.join(missing)} "
            "(written by `hwsim train`)"
        )
    return run


@dataclass(frozen=True)
class _Run:
    """A loaded run: its final model (eval mode, on ``device``) and the epoch it finished."""

    path: Path
    config: TrainConfig
    data: Dataset
    model: nn.Module
    epoch: int
    device: torch.device


DeviceSpec = str | torch.device | None
"""``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"`` (the GPU when there is one) or a device."""


def _open_run(
    run_dir: str | Path, device: torch.device, data_dir: str | Path | None = None
) -> _Run:
    run = _require(run_dir, ("checkpoint.pt",))
    ckpt_path = run / "checkpoint.pt"
    # Model building draws default inits from the global RNG; leave the caller's stream alone.
    with torch.random.fork_rng(devices=[]):
        try:
            epoch = int(load_checkpoint(ckpt_path)["epoch"])
            config, model, data = load_run(run, data_dir=data_dir)
        except InputError:
            raise
        except (
            OSError,
            RuntimeError,
            EOFError,
            KeyError,
            ValueError,
            TypeError,
            IndexError,
            AttributeError,
            pickle.UnpicklingError,
        ) as e:
            raise InputError(f"{ckpt_path}: cannot read the checkpoint ({e})") from None
    model.to(device).eval()
    return _Run(path=run, config=config, data=data, model=model, epoch=epoch, device=device)


def _model_at(run: _Run, epoch: int) -> nn.Module:
    """The model after ``epoch`` (eval mode): the final model, or rebuilt from its snapshot."""
    if epoch == run.epoch:
        return run.model
    path = snapshot_path(run.path, epoch)
    state = load_checkpoint(path)
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a snapshot of `hwsim train` (expected a state dict)")
    with torch.random.fork_rng(devices=[]):
        model = build_model(run.config, run.data)
    try:
        load_weights(model, state, path)
    except (RuntimeError, ValueError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: does not fit the run's network ({first})") from None
    return model.to(run.device).eval()


def _resolve_epochs(run: _Run, epochs: Sequence[int] | str | None) -> list[int]:
    """Requested epochs, sorted and checked against the snapshots the run kept."""
    if epochs is None:
        return []
    kept = kept_epochs(run.path)
    if isinstance(epochs, str):
        if epochs != "all":
            raise InputError(f"epochs must be a list of integers or 'all', got {epochs!r}")
        return sorted({e for e in kept if e <= run.epoch} | {run.epoch})
    wanted = []
    for e in epochs:
        if isinstance(e, bool) or not isinstance(e, int):
            raise InputError(f"epochs must be integers, got {e!r}")
        wanted.append(e)
    missing = [e for e in sorted(set(wanted)) if e != run.epoch and (e not in kept or e < 0)]
    if missing:
        raise InputError(
            f"{run.path} has no weights for epoch(s) {', '.join(map(str, missing))}; "
            f"final epoch {run.epoch}, snapshots kept: "
            + (", ".join(map(str, kept)) or "none (trained with snapshots off)")
        )
    return sorted(set(wanted))


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")


def _train_batches(
    data: Dataset, samples: int, batch_size: int, device: torch.device
) -> tuple[list[tuple[Tensor, Tensor]], int]:
    """The first ``samples`` training samples (or all there are) in batches of ``batch_size``,
    on ``device``."""
    _positive("samples", samples)
    _positive("batch_size", batch_size)
    n = min(samples, len(data.y_train))
    x, y = data.x_train[:n].to(device), data.y_train[:n].to(device)
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size)], n


def _data_block(split: str, samples: int, batch_size: int | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "split": split,
        "samples": samples,
        "selection": f"the first {samples} samples of the {split} split (shuffled by data_seed)",
    }
    if batch_size is not None:
        block["batch_size"] = batch_size
        block["loss"] = _LOSS
    return block


def _header(what: str, run: _Run, seed: int | None) -> dict[str, Any]:
    header: dict[str, Any] = {
        "analysis": what,
        "version": RESULT_VERSION,
        "rule": run.config.algo,
        "epoch": run.epoch,
    }
    if seed is not None:
        header["seed"] = seed
    header["device"] = str(run.device)
    return header


# --------------------------------------------------------------------------- writing


def _write(run: Path, what: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``RUN_DIR/analysis/<what>.json`` atomically; return the JSON-ready result."""
    result = jsonable(result)
    json_path, _ = analysis_files(run, what)
    write_atomic(json_path, json.dumps(result, indent=1) + "\n")
    return result


# --------------------------------------------------------------------------- curvature


def _curvature_of(
    model: nn.Module,
    batches: list[tuple[Tensor, Tensor]],
    *,
    probes: int,
    top_k: int,
    slq: bool,
    slq_steps: int,
    slq_probes: int,
    seed: int,
) -> dict[str, Any]:
    """Curvature numbers of one model's BP view on fixed batches."""
    view = bp_view(model).eval()
    operator = HessianOperator(view, F.cross_entropy, batches)
    trace = hutchinson_trace(operator, samples=probes, seed=seed)
    top = top_eigenvalues(operator, k=min(top_k, operator.size), tol=EIGEN_TOL, seed=seed)
    entry: dict[str, Any] = {
        "loss": operator.loss(),
        "trace": trace.estimate,
        "trace_stderr": trace.stderr,
        "top_eigenvalues": list(top.eigenvalues),
        "eigen_residuals": list(top.residuals),
        "eigen_relative_residuals": list(top.relative_residuals),
        "eigen_residual_estimates": list(top.residual_estimates),
        "eigen_converged": list(top.converged),
        "lanczos_steps": top.iterations,
        "density": None,
    }
    if slq:
        density = spectral_density(
            operator,
            steps=slq_steps,
            probes=slq_probes,
            grid_points=DENSITY_GRID_POINTS,
            seed=seed,
        )
        entry["density"] = {**density.to_dict(), "mean": density.mean()}
    return entry


def _loss_level(at_loss: float | None) -> float | None:
    if at_loss is None:
        return None
    if isinstance(at_loss, bool) or not (finite(at_loss) and at_loss > 0):
        raise InputError(f"at_loss must be a positive training loss, got {at_loss!r}")
    return float(at_loss)


def _at_loss_epoch(run: _Run, level: float) -> dict[str, Any]:
    """Where the run first reaches training loss ``level`` (from ``metrics.jsonl``), and whether
    its weights there are kept; no curvature yet.

    Rows after the checkpoint's epoch, diverged rows and non-finite losses are left out. The
    block says ``status``: ``measured`` (weights found: the final checkpoint or a snapshot),
    ``never reached`` or ``no snapshot`` (reached at an epoch whose weights the run did not
    keep); ``note`` says it in words for the last two.
    """
    rows = [
        r
        for r in read_metrics(run.path)
        if r["epoch"] <= run.epoch and not r.get("diverged") and finite(r.get("train_loss"))
    ]
    block: dict[str, Any] = {
        "level": level,
        "criterion": AT_LOSS_CRITERION,
        "status": NEVER_REACHED,
        "reached": False,
        "epoch": None,
        "train_loss": None,
        "weights": None,
        "lowest_train_loss": None,
        "lowest_epoch": None,
        "note": None,
        "curvature": None,
    }
    if rows:
        lowest = min(rows, key=lambda r: (r["train_loss"], r["epoch"]))
        block["lowest_train_loss"] = lowest["train_loss"]
        block["lowest_epoch"] = lowest["epoch"]
    first = next((r for r in rows if r["train_loss"] <= level), None)
    if first is None:
        block["note"] = never_reached_text(block["lowest_train_loss"], block["lowest_epoch"])
        return block
    epoch = first["epoch"]
    block.update(reached=True, epoch=epoch, train_loss=first["train_loss"])
    if epoch == run.epoch:
        block.update(status=MEASURED, weights="checkpoint.pt (final weights)")
    elif epoch in kept_epochs(run.path):
        weights = snapshot_path(run.path, epoch).relative_to(run.path).as_posix()
        block.update(status=MEASURED, weights=weights)
    else:
        block.update(
            status=NO_SNAPSHOT,
            note=(
                f"reached at epoch {epoch} (training loss {first['train_loss']:.4g}), but the "
                f"run kept no weights of epoch {epoch} (trained with snapshots off?): not "
                "measured; train with snapshots on to measure it"
            ),
        )
    return block


def never_reached_text(lowest: float | None, epoch: int | None) -> str:
    """``never reached (lowest loss X at epoch E)``, the note of a level a run never reached."""
    if lowest is None or epoch is None:
        return "never reached (no finite training loss recorded)"
    return f"never reached (lowest loss {lowest:.4g} at epoch {epoch})"


def analyze_curvature(
    run_dir: str | Path,
    *,
    epochs: Sequence[int] | Literal["all"] | None = None,
    at_loss: float | None = None,
    samples: int = 1000,
    batch_size: int = 250,
    probes: int = 100,
    top_k: int = 5,
    slq: bool = True,
    slq_steps: int = 30,
    slq_probes: int = 4,
    seed: int = 0,
    device: DeviceSpec = "cpu",
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Hessian trace, top eigenvalues and spectral density of a run; writes ``hessian.json``.

    Measured on the BP view in eval mode, for the mean cross-entropy over the first ``samples``
    training samples in batches of ``batch_size`` (a fixed operator). Trace: Hutchinson with
    ``probes`` Rademacher probes (estimate and standard error). Eigenvalues: the ``top_k``
    largest by Lanczos (relative residual tolerance :data:`EIGEN_TOL`). Density: stochastic
    Lanczos quadrature with ``slq_probes`` probes of ``slq_steps`` steps (skipped with
    ``slq=False``). All three are seeded with ``seed``.

    The top-level ``trace``, ``trace_stderr``, ``top_eigenvalues`` (…) are for the final model;
    ``epochs`` (a list, or ``"all"`` kept snapshots) adds the same under ``by_epoch[str(epoch)]``.

    ``at_loss`` (a training loss, e.g. 0.3) adds ``at_loss``: the same numbers at the *first*
    epoch whose training loss in ``metrics.jsonl`` is at most ``at_loss``, so that runs can be
    compared at equal loss rather than at equal epochs, with that epoch, its training loss and
    the weights read (the final checkpoint or ``snapshots/epoch-NNNN.pt``). A run that never
    gets there is not an error: ``status`` is ``never reached`` and ``note`` says
    ``never reached (lowest loss X at epoch E)``; reached at an epoch without a snapshot, it is
    ``no snapshot`` (not measured). ``curvature`` is null in both cases; nothing falls back to
    the final epoch. ``device`` is where the model and data go (``resolve_device``; the CPU by
    default).
    """
    for name, value in (("probes", probes), ("top_k", top_k)):
        _positive(name, value)
    if slq:
        _positive("slq_steps", slq_steps)
        _positive("slq_probes", slq_probes)
    level = _loss_level(at_loss)
    run = _open_run(run_dir, resolve_device(device), data_dir)
    wanted = _resolve_epochs(run, epochs)
    at = _at_loss_epoch(run, level) if level is not None else None
    batches, n = _train_batches(run.data, samples, batch_size, run.device)
    options = dict(
        probes=probes,
        top_k=top_k,
        slq=slq,
        slq_steps=slq_steps,
        slq_probes=slq_probes,
        seed=seed,
    )
    final = _curvature_of(run.model, batches, **options)
    by_epoch = {
        str(e): final if e == run.epoch else _curvature_of(_model_at(run, e), batches, **options)
        for e in wanted
    }
    if at is not None and at["status"] == MEASURED:
        epoch = at["epoch"]
        at["curvature"] = (
            final
            if epoch == run.epoch
            else by_epoch.get(str(epoch))
            or _curvature_of(_model_at(run, epoch), batches, **options)
        )
    result: dict[str, Any] = {
        **_header("hessian", run, seed),
        "view": _VIEW,
        "data": _data_block("train", n, batch_size),
        "method": {
            "trace": f"Hutchinson, {probes} Rademacher probes; stderr = std / sqrt(probes)",
            "top_eigenvalues": f"Lanczos, full reorthogonalization, relative tol {EIGEN_TOL}",
            "density": (
                f"stochastic Lanczos quadrature, {slq_probes} probes x {slq_steps} steps, "
                "Gaussian smoothing"
                if slq
                else None
            ),
        },
        "probes": probes,
        "top_k": top_k,
        "slq_steps": slq_steps if slq else None,
        "slq_probes": slq_probes if slq else None,
        "parameters": get_flat_parameters(run.model).numel(),
        "note": (
            "quantized model: this is the curvature of the straight-through-estimator surrogate "
            "(the quantized loss is piecewise constant in the weights)"
            if run.config.quantized
            else None
        ),
        **final,
        "by_epoch": by_epoch,
        "at_loss": at,
    }
    return _write(run.path, "hessian", result)


# --------------------------------------------------------------------------- landscape


def _grid_values(span: float, points: int) -> list[float]:
    values = torch.linspace(-span, span, points, dtype=torch.float64).tolist()
    if points % 2 == 1:
        values[points // 2] = 0.0  # the centre is exactly the trained weights
    return values


def analyze_landscape(
    run_dir: str | Path,
    *,
    grid: int = 21,
    span: float | None = None,
    rise: float = 1.0,
    samples: int = 1000,
    batch_size: int = 250,
    trajectory_grid: int = 21,
    margin: float = 0.2,
    seed: int = 0,
    device: DeviceSpec = "cpu",
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Loss surface along the top-2 Hessian eigenvectors, and the trajectory; ``landscape.json``.

    Surface: the loss at ``w + α d₁ + β d₂`` around the final weights ``w`` for ``α, β`` on
    ``grid`` points in ``[-span, span]`` (a parameter-space distance: ``d₁, d₂`` are the unit top
    two Hessian eigenvectors of the BP view, by Lanczos seeded with ``seed``). ``span=None``
    picks ``√(2·rise/λ₁)``, where the quadratic model along ``d₁`` has risen by ``rise`` (nats),
    so the picture shows the basin whatever the curvature (1.0 if ``λ₁ ≤ 0``); to compare the
    flatness of several runs on one scale, pass the same explicit ``span``. Trajectory: the
    weight snapshots (epoch 0 … final) minus the final weights, projected on their top two
    principal components, with the loss at each snapshot's true weights and the surface on that
    plane (``trajectory_grid`` points per axis, the path's extent plus ``margin`` on each side).
    Data and ``device`` as for :func:`analyze_curvature`.
    """
    _positive("grid", grid)
    _positive("trajectory_grid", trajectory_grid)
    for name, value in (("span", span), ("rise", rise)):
        if value is not None and not (finite(value) and value > 0):
            raise InputError(f"{name} must be a positive number, got {value!r}")
    if not (isinstance(margin, int | float) and margin >= 0):
        raise InputError(f"margin must be non-negative, got {margin!r}")
    run = _open_run(run_dir, resolve_device(device), data_dir)
    batches, n = _train_batches(run.data, samples, batch_size, run.device)
    view = bp_view(run.model).eval()
    # The same Lanczos call loss_surface makes by default; done here to size the grid first.
    top = top_eigenvalues(HessianOperator(view, F.cross_entropy, batches), k=2, seed=seed)
    if span is None:
        top_value = top.eigenvalues[0]
        span = math.sqrt(2.0 * rise / top_value) if top_value > 0 else 1.0
        span_rule = f"sqrt(2 * {rise:g} / top eigenvalue): the quadratic model rises {rise:g}"
    else:
        span_rule = "given"
    axis = _grid_values(float(span), grid)
    surface = loss_surface(
        view, F.cross_entropy, batches, directions=top.eigenvectors, alphas=axis, betas=axis
    )
    surface_dict = {**surface.to_dict(), "direction_eigenvalues": list(top.eigenvalues)}
    epochs = [e for e in kept_epochs(run.path) if e < run.epoch] + [run.epoch]
    trajectory: dict[str, Any] | None = None
    trajectory_note = None
    if len(epochs) < 2:
        trajectory_note = "no weight snapshots before the final epoch (trained with snapshots off)"
    else:
        flats = [get_flat_parameters(_model_at(run, e)) for e in epochs]
        pca = trajectory_pca(
            flats,
            model=view,
            loss_fn=F.cross_entropy,
            batches=batches,
            surface_points=trajectory_grid,
            margin=float(margin),
        )
        trajectory = {"epochs": epochs, **pca.to_dict()}
    losses = [v for row in surface_dict["loss"] for v in row]
    result: dict[str, Any] = {
        **_header("landscape", run, seed),
        "view": _VIEW,
        "data": _data_block("train", n, batch_size),
        "grid": grid,
        "span": float(span),
        "span_rule": span_rule,
        "center_loss": surface.center_loss,
        "max_loss_increase": max(losses) - surface.center_loss,
        "surface": {
            "directions": "unit top-2 Hessian eigenvectors (Lanczos) of the BP view",
            **surface_dict,
        },
        "trajectory": trajectory,
        "trajectory_note": trajectory_note,
    }
    return _write(run.path, "landscape", result)


# --------------------------------------------------------------------------- alignment


def _check_angles(row: dict[str, Any], key: str, required: bool, where: str) -> None:
    """``row[key]`` is ``{layer: degrees or null}`` (or absent / null where not ``required``)."""
    value = row.get(key)
    if value is None and not required:
        return
    if not isinstance(value, dict) or not all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool))
        for v in value.values()
    ):
        raise InputError(
            f"{where}: {key!r} = {value!r}: expected {{layer: degrees}} (docs/learning.md)"
        )


def analyze_alignment(run_dir: str | Path) -> dict[str, Any]:
    """Alignment angles over training, from ``metrics.jsonl``; writes ``alignment.json``.

    Per layer, per epoch (0 = initialization): the angle between W and B (``alignment_deg``) and
    the angle between the rule's weight update direction and the true gradient
    (``update_angle_deg``, measured during training on the first ``update_angle_batches`` training
    batches; None where not recorded: BP, diverged epochs). Nothing is recomputed.
    """
    run = _require(run_dir, ("config.yaml", "metrics.jsonl"))
    config_path, metrics_path = run / "config.yaml", run / "metrics.jsonl"
    text = read_text(config_path, "the run's training config (written by `hwsim train`)")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"{config_path}: invalid YAML ({e})") from None
    config = TrainConfig.from_dict(raw, source=str(config_path))
    rows = read_metrics(run)
    if not rows:
        raise InputError(f"{metrics_path}: expected one JSON row per epoch with alignment_deg")
    for number, row in enumerate(rows, start=1):
        for key in ("alignment_deg", "update_angle_deg"):
            _check_angles(row, key, key == "alignment_deg", f"{metrics_path}: row {number}")
    layers = list(rows[0]["alignment_deg"])
    alignment = {layer: [r["alignment_deg"].get(layer) for r in rows] for layer in layers}
    update = {
        layer: [(r.get("update_angle_deg") or {}).get(layer) for r in rows] for layer in layers
    }

    recorded = any(v is not None for values in update.values() for v in values)
    result: dict[str, Any] = {
        "analysis": "alignment",
        "version": RESULT_VERSION,
        "rule": config.algo,
        "source": "metrics.jsonl (measured during training)",
        "update_angle_batches": config.update_angle_batches,
        "epochs": [r["epoch"] for r in rows],
        "layers": layers,
        "alignment_deg": alignment,
        "update_angle_deg": update,
        # Means over the layers' finite angles (None where there is none).
        "mean_alignment_deg": [mean_std(r["alignment_deg"].values())[0] for r in rows],
        "mean_update_angle_deg": [
            mean_std((r.get("update_angle_deg") or {}).values())[0] for r in rows
        ],
        "test_accuracy": [r.get("test_accuracy") for r in rows],
        "diverged": [bool(r.get("diverged")) for r in rows],
        "note": (
            None
            if recorded
            else "BP sends errors through W itself (0°) and its update is the true gradient; "
            "update angles are not recorded"
            if config.algo == "bp"
            else "update angles were not recorded (update_angle_batches = 0)"
        ),
    }
    return _write(run, "alignment", result)


# --------------------------------------------------------------------------- robustness


def _surrogate(run: _Run, surrogate_dir: str | Path | None) -> tuple[nn.Module, dict[str, Any]]:
    """A BP-trained surrogate: the given run, or one trained (once) into analysis/surrogate."""
    if surrogate_dir is None:
        out = run.path / SURROGATE_DIR
        config = run.config.replace(
            algo="bp", seed=run.config.seed + SURROGATE_SEED_OFFSET, snapshots=False
        )
        with torch.random.fork_rng(devices=[]):  # train() seeds the global RNG itself
            train(config, out)
        where, trained_here = SURROGATE_DIR, True
    else:
        out, where, trained_here = Path(surrogate_dir), str(surrogate_dir), False
    surrogate = _open_run(out, run.device)
    if surrogate.data.input_shape != run.data.input_shape or (
        surrogate.config.dataset != run.config.dataset
    ):
        raise InputError(
            f"surrogate {out} was trained on {surrogate.config.dataset!r} "
            f"{list(surrogate.data.input_shape)}, the run on {run.config.dataset!r} "
            f"{list(run.data.input_shape)}: they must match"
        )
    info = {
        "dir": where,
        "trained_here": trained_here,
        "rule": surrogate.config.algo,
        "seed": surrogate.config.seed,
        "epoch": surrogate.epoch,
        "attacked_through": "its true gradient (BP view)",
    }
    return surrogate.model, info


def analyze_robustness(
    run_dir: str | Path,
    *,
    corruptions: Sequence[str] = CORRUPTION_NAMES,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    eps_list: Sequence[float] = DEFAULT_EPS,
    attacks: Sequence[str] = ("fgsm", "pgd"),
    pgd_steps: int = 10,
    surrogate_dir: str | Path | None = None,
    samples: int = 1000,
    seed: int = 0,
    device: DeviceSpec = "cpu",
    data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Corruption and adversarial robustness of a run's final model; writes ``robustness.json``.

    On the first ``samples`` test samples, with the model in eval mode:

    - ``corruptions`` at ``severities`` (image datasets only; for other data they are skipped and
      ``corruptions_skipped`` says why), seeded with ``seed``;
    - each attack in ``attacks`` (``fgsm``, ``pgd`` with ``pgd_steps`` steps of ``2.5·ε/steps`` and
      a seeded random start) at each ε of ``eps_list`` (L∞, input units; clipped to [0, 1] for
      images), crafted three ways and always evaluated on the model: ``true`` (the gradient of
      the BP view), ``feedback`` (autograd through the model as trained: FA/IFA send the error
      through B; for BP the same as ``true``) and ``transfer`` (black box: crafted on a BP-trained
      surrogate through its true gradient).

    The surrogate is ``surrogate_dir`` (a run directory on the same dataset) or, when None, a BP
    run with the same config and seed + 1 trained into ``RUN_DIR/analysis/surrogate/`` (reused
    when already there); ``surrogate`` in the JSON says which. The model, the surrogate and the
    samples go to ``device`` (as for :func:`analyze_curvature`); attack starts and corruption
    noise are drawn on the CPU, so a seed gives the same draws on every device.
    """
    unknown = [c for c in corruptions if c not in CORRUPTION_NAMES]
    if unknown:
        raise InputError(
            f"unknown corruption(s) {', '.join(map(str, unknown))}: "
            f"choose from {', '.join(CORRUPTION_NAMES)}"
        )
    if any(isinstance(s, bool) or s not in (1, 2, 3, 4, 5) for s in severities):
        raise InputError(f"severities must be in 1..5, got {list(severities)}")
    bad_attacks = [a for a in attacks if a not in ("fgsm", "pgd")]
    if bad_attacks:
        raise InputError(f"unknown attack(s) {', '.join(map(str, bad_attacks))}: fgsm or pgd")
    if any(not (finite(e) and e >= 0) for e in eps_list):
        raise InputError(f"eps values must be finite and non-negative, got {list(eps_list)}")
    _positive("pgd_steps", pgd_steps)
    _positive("samples", samples)
    run = _open_run(run_dir, resolve_device(device), data_dir)
    n = min(samples, len(run.data.y_test))
    x, y = run.data.x_test[:n].to(run.device), run.data.y_test[:n].to(run.device)
    model = run.model
    image = len(run.data.input_shape) == 3
    clip = (0.0, 1.0) if image else None  # image datasets hold intensities in [0, 1]
    clean = accuracy(model, x, y)

    corruption_results: list[dict[str, Any]] = []
    skipped = None
    if not image:
        skipped = (
            f"dataset {run.config.dataset!r} is not images (inputs {list(run.data.input_shape)}): "
            "image corruptions do not apply"
        )
    elif corruptions and severities:
        corruption_results = [
            r.to_dict()
            for r in corruption_accuracy(
                model, x, y, names=corruptions, severities=severities, seed=seed
            )
        ]
    by_corruption: dict[str, list[float]] = {}
    for r in corruption_results:
        by_corruption.setdefault(r["corruption"], []).append(r["accuracy"])

    surrogate, surrogate_info = _surrogate(run, surrogate_dir)
    surrogate_info["clean_accuracy"] = accuracy(surrogate, x, y)
    sources = {
        "true": input_gradient_fn(bp_view(model).eval()),
        "feedback": input_gradient_fn(model),
    }
    eps = [float(e) for e in eps_list]
    common: dict[str, Any] = dict(eps_list=eps, steps=pgd_steps, seed=seed, clip=clip)
    adversarial: list[dict[str, Any]] = []
    table: dict[str, dict[str, list[float]]] = {}
    for attack in attacks:
        runs = [
            adversarial_accuracy(
                model, x, y, attack=attack, grad_fn=fn, gradient_source=name, **common
            )
            for name, fn in sources.items()
        ]
        runs.append(
            transfer_accuracy(bp_view(surrogate).eval(), model, x, y, attack=attack, **common)
        )
        table[attack] = {rs[0].gradient_source: [r.accuracy for r in rs] for rs in runs if rs}
        adversarial += [r.to_dict() for rs in runs for r in rs]

    all_corrupted = [r["accuracy"] for r in corruption_results]
    result: dict[str, Any] = {
        **_header("robustness", run, seed),
        "data": _data_block("test", n),
        "clean_accuracy": clean,
        "severities": list(severities),
        "corruption_accuracy": by_corruption,
        "mean_corruption_accuracy": mean_std(all_corrupted)[0],
        "corruptions": corruption_results,
        "corruptions_skipped": skipped,
        "eps": eps,
        "attacks": list(attacks),
        "pgd_steps": pgd_steps,
        "pgd_step_size": f"2.5 * eps / {pgd_steps}, random start uniform in the eps-ball",
        "clip": list(clip) if clip else None,
        "adversarial_accuracy": table,
        "adversarial": adversarial,
        "gradient_sources": {
            "true": "white box: the input gradient of the BP view (the true gradient)",
            "feedback": (
                "white box: autograd through the model as trained (its own feedback B)"
                if run.config.algo != "bp"
                else "white box: autograd through the model as trained (for BP, the true gradient)"
            ),
            "transfer": "black box: crafted on the BP-trained surrogate, evaluated on the model",
        },
        "surrogate": surrogate_info,
    }
    return _write(run.path, "robustness", result)


# --------------------------------------------------------------------------- dispatch


_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "hessian": analyze_curvature,
    "landscape": analyze_landscape,
    "alignment": analyze_alignment,
    "robustness": analyze_robustness,
}


def _keywords(function: Callable[..., Any]) -> set[str]:
    return {
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def analysis_names(what: str) -> list[str]:
    """The analyses ``what`` runs, in order: ``[what]``, or every one of :data:`ANALYSES` for
    ``"all"`` (an unknown name is an :class:`InputError`)."""
    if what not in (*ANALYSES, "all"):
        raise InputError(f"unknown analysis {what!r}: choose from {', '.join(ANALYSES)}, all")
    return list(ANALYSES) if what == "all" else [what]


def analyze(
    run_dir: str | Path,
    what: str,
    *,
    on_done: Callable[[str, dict[str, Any]], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run analysis ``what`` (one of :data:`ANALYSES`, or ``"all"``) on ``run_dir``.

    ``options`` are the keyword arguments of the analysis function. For ``"all"`` each analysis
    gets the options it accepts, and the result maps each name to its result. An unknown
    ``what``, or an option no chosen analysis accepts, is an :class:`InputError`.
    ``on_done(name, result)`` is called after each analysis (:func:`analysis_names` lists them:
    a progress bar's total).
    """
    names = analysis_names(what)
    accepted = set().union(*(_keywords(_FUNCTIONS[name]) for name in names))
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InputError(
            f"option(s) {', '.join(unknown)} do not apply to {what}"
            + (f" (it takes {', '.join(sorted(accepted))})" if accepted else "")
        )
    results = {}
    for name in names:
        function = _FUNCTIONS[name]
        mine = {k: v for k, v in options.items() if k in _keywords(function)}
        results[name] = function(run_dir, **mine)
        if on_done is not None:
            on_done(name, results[name])
    return results if what == "all" else results[what]
