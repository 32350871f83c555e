"""Sweeps: many training runs over one setting, with mean ± std over seeds (the paper's Fig 3–4).

A sweep varies one thing of a base :class:`TrainConfig` and trains one run per *point*
(parameter value × rule × seed):

========= ================== ===================================================================
kind      parameter          points
========= ================== ===================================================================
angle     ``angle_deg``      rule ``ifa:θ`` for each θ (θ = 0 is ``ifa``); Fig 4
depth     ``depth``          depth × rules (bp, fa, ifa); Fig 3b
data      ``train_size``     training-set size × rules (bp, fa, ifa); Fig 3c
init      ``gains``          forward gain × backward gain × rules (ifa, fa); Fig 3a
rules     none               each rule once at the base config (the comparison of ``reproduce``)
========= ================== ===================================================================

The sweep directory ``OUT`` holds:

- ``sweep-spec.json``: the resolved spec (written first; a different spec in the same directory
  is an :class:`InputError` unless ``force``);
- ``runs/<point-id>/``: an ordinary training run directory per point (docs/learning.md);
- ``points.jsonl``: one JSON line per finished point, appended (written, flushed, fsynced) as
  soon as the point finishes and never twice: a resumed sweep skips the points already there,
  and an unfinished run directory resumes from its checkpoint;
- ``sweep.json``: the aggregates (mean ± sample standard deviation, n − 1, over seeds per
  parameter value and rule; :mod:`hwsim.core.stats`), written atomically at the end.

The figure ``<kind>.png`` is drawn from ``sweep.json`` alone by
:func:`hwsim.render.sweeps.write_sweep_figure` (``hwsim sweep`` calls it after :func:`run_sweep`);
this module computes and saves data only.

A diverged run is a result like any other: its final accuracy is that of the weights it ended
with (evaluated like every epoch), and the groups count how many seeds diverged.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.files import append_jsonl, claim_out_dir, jsonable, read_jsonl, write_atomic
from hwsim.core.outputs import SWEEP_SUMMARY_FILE
from hwsim.core.rules import parse_rule, rule_dirname
from hwsim.core.stats import describe, finite, mean_std
from hwsim.experiments.executors import Executor, FailedPointsError, LocalExecutor
from hwsim.experiments.experiment import default_train_config
from hwsim.models.config import TrainConfig
from hwsim.models.data import MAX_TRAIN_SIZE, MIN_TRAIN_SIZE
from hwsim.models.training import RunResult, train

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_RULES",
    "DEFAULT_VALUES",
    "PARAMETERS",
    "SWEEP_FORMAT",
    "SWEEP_KINDS",
    "SWEEP_VERSION",
    "CurvatureSettings",
    "RobustnessSettings",
    "SweepPoint",
    "SweepSpec",
    "aggregate",
    "make_spec",
    "points_in_spec_order",
    "read_points",
    "run_sweep",
    "summarize",
]

SWEEP_FORMAT = "hwsim-sweep"
SWEEP_VERSION = 1
SWEEP_KINDS = ("angle", "depth", "data", "init", "rules")
#: What each kind varies (the key of a point's ``value``).
PARAMETERS: dict[str, str | None] = {
    "angle": "angle_deg",
    "depth": "depth",
    "data": "train_size",
    "init": "gains",
    "rules": None,
}
DEFAULT_VALUES: dict[str, tuple[Any, ...]] = {
    "angle": (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0),
    "depth": (2, 4, 6, 8, 10),
    "data": (100, 500, 1000, 5000, 10000, 50000),
    "init": (0.5, 1.0, 1.414, 2.0),
    "rules": (),
}
DEFAULT_RULES: dict[str, tuple[str, ...]] = {
    "angle": ("ifa",),
    "depth": ("bp", "fa", "ifa"),
    "data": ("bp", "fa", "ifa"),
    "init": ("ifa", "fa"),
    "rules": ("bp", "fa", "ifa", "ifa:45"),
}
#: The base of a spec that names none: the default experiment's training settings
#: (configs/experiments/default.yaml: 8-bit MLP 784-256×5-10 on mnist5k, Adam 1e-3, 5 epochs),
#: without weight snapshots; ``hwsim sweep`` builds its base from the same values.
DEFAULT_BASE = default_train_config(snapshots=False)

SPEC_FILE = "sweep-spec.json"
POINTS_FILE = "points.jsonl"
SUMMARY_FILE = SWEEP_SUMMARY_FILE
RUNS_DIR = "runs"
SURROGATES_DIR = "surrogates"
#: Metrics aggregated over seeds, with what they are (copied into ``sweep.json``).
MEASURED = {
    "final_test_accuracy": (
        "test accuracy of the weights the run ended with (after the last epoch run, a diverged "
        "last epoch included)"
    ),
    "best_test_accuracy": "best test accuracy over the epochs before any divergence",
    "final_train_accuracy": "training-set accuracy after the last epoch run (eval mode)",
    "final_train_loss": "training-set mean cross-entropy after the last epoch (null if non-finite)",
    "final_alignment_deg_mean": "W-vs-B angle after training, mean over layers (bp: 0)",
    "hessian_trace": "Hutchinson trace of the training-loss Hessian on the BP view, final weights",
    "hessian_trace_stderr": "its standard error over the Rademacher probes",
    "top_eigenvalue": "largest Hessian eigenvalue (Lanczos) on the BP view, final weights",
    "clean_accuracy": "accuracy on the robustness test samples, no perturbation",
    "corruption_accuracy": "accuracy under corruptions, mean over corruptions × severities",
    "<attack>_<source>_accuracy": (
        "adversarial accuracy, mean over the ε > 0 of the spec; source true (white box, true "
        "gradient), feedback (white box, the model's own feedback) or transfer (black box, "
        "crafted on a BP-trained surrogate)"
    ),
}


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class CurvatureSettings:
    """How the Hessian is measured (``analyze_curvature`` arguments): at the end of training,
    and with ``at_loss`` also at the first epoch whose training loss is at most ``at_loss``.

    A sweep whose curvature has ``at_loss`` keeps weight snapshots (:func:`make_spec` turns
    them on and says so in the notes): the level is usually reached before the last epoch.
    """

    samples: int = 1000
    batch_size: int = 250
    probes: int = 30
    top_k: int = 1
    seed: int = 0
    at_loss: float | None = None

    def __post_init__(self) -> None:
        level = self.at_loss
        if level is not None and (
            isinstance(level, bool)
            or not isinstance(level, int | float)
            or not (math.isfinite(level) and level > 0)
        ):
            raise InputError(f"curvature at_loss must be a positive training loss, got {level!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored in the spec; ``at_loss`` only when set, so that the specs of
        sweeps without it read as before)."""
        out: dict[str, Any] = {
            "samples": self.samples,
            "batch_size": self.batch_size,
            "probes": self.probes,
            "top_k": self.top_k,
            "seed": self.seed,
        }
        if self.at_loss is not None:
            out["at_loss"] = self.at_loss
        return out


@dataclass(frozen=True)
class RobustnessSettings:
    """How robustness is measured at the end of training (``analyze_robustness`` arguments).

    The black-box attack is crafted on one BP surrogate per seed, trained with the base config
    and seed + 1 into ``OUT/surrogates/`` (the same surrogate for every point of that seed).
    """

    samples: int = 1000
    eps: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1)
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    pgd_steps: int = 10
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored in the spec)."""
        return {
            "samples": self.samples,
            "eps": list(self.eps),
            "attacks": list(self.attacks),
            "pgd_steps": self.pgd_steps,
            "severities": list(self.severities),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class SweepPoint:
    """One training run of a sweep: parameter value, rule, seed and the config that trains it."""

    point_id: str
    kind: str
    value: Any  # θ, depth, train size, [forward gain, backward gain], or None (rules)
    rule: str
    seed: int
    config: TrainConfig


@dataclass(frozen=True)
class SweepSpec:
    """A resolved sweep: what varies, over which values, rules and seeds, from which base config.

    Build it with :func:`make_spec` (validation, defaults, training sizes capped at what the
    dataset has). ``notes`` say what was changed from the request (e.g. capped sizes).
    """

    kind: str
    base: TrainConfig
    values: tuple[Any, ...]
    rules: tuple[str, ...]
    seeds: tuple[int, ...]
    min_steps: int = 0
    curvature: CurvatureSettings | None = None
    robustness: RobustnessSettings | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def parameter(self) -> str | None:
        """Name of the swept setting (``None`` for a ``rules`` comparison)."""
        return PARAMETERS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (``sweep-spec.json``, and ``spec`` in ``sweep.json``)."""
        return {
            "kind": self.kind,
            "parameter": self.parameter,
            "values": [list(v) if isinstance(v, tuple) else v for v in self.values],
            "rules": list(self.rules),
            "seeds": list(self.seeds),
            "min_steps": self.min_steps,
            "base": self.base.to_dict(),
            "curvature": self.curvature.to_dict() if self.curvature else None,
            "robustness": self.robustness.to_dict() if self.robustness else None,
            "notes": list(self.notes),
        }

    def points(self) -> list[SweepPoint]:
        """Every point, in the order they run: value, then rule, then seed."""
        out = []
        for value in self.values if self.kind != "rules" else (None,):
            rules = (_angle_rule(value),) if self.kind == "angle" else self.rules
            for rule in rules:
                for seed in self.seeds:
                    config = self._config(value, rule, seed)
                    point_id = f"{_value_tag(self.kind, value)}_{rule_dirname(rule)}_seed{seed}"
                    stored = list(value) if isinstance(value, tuple) else value
                    out.append(SweepPoint(point_id, self.kind, stored, rule, seed, config))
        return out

    def _config(self, value: Any, rule: str, seed: int) -> TrainConfig:
        config = self.base.replace(algo=rule, seed=seed)
        if self.kind == "depth":
            return config.replace(depth=value)
        if self.kind == "data":
            steps_per_epoch = math.ceil(value / config.batch_size)
            epochs = max(config.epochs, math.ceil(self.min_steps / steps_per_epoch))
            return config.replace(train_size=value, epochs=epochs)
        if self.kind == "init":
            return config.replace(forward_gain=value[0], backward_gain=value[1])
        return config


def _angle_rule(theta: Any) -> str:
    return parse_rule(f"ifa:{theta:g}").spec


def _value_tag(kind: str, value: Any) -> str:
    if kind == "angle":
        return f"theta{value:g}"
    if kind == "depth":
        return f"depth{value}"
    if kind == "data":
        return f"n{value}"
    if kind == "init":
        return f"fg{value[0]:g}-bg{value[1]:g}"
    return "base"


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return value


def _unique(name: str, values: Sequence[Any]) -> None:
    if len(set(values)) != len(values):
        raise InputError(f"{name} lists a value twice: {', '.join(map(str, values))}")


def make_spec(
    kind: str,
    *,
    base: TrainConfig = DEFAULT_BASE,
    values: Sequence[Any] | None = None,
    rules: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    min_steps: int = 0,
    curvature: CurvatureSettings | None = None,
    robustness: RobustnessSettings | None = None,
) -> SweepSpec:
    """Validate and resolve a sweep of ``kind`` (one of :data:`SWEEP_KINDS`).

    ``values``: angles in degrees (angle), depths (depth), training-set sizes (data; sizes above
    what the dataset has are replaced by its size, said in ``notes``) or gains (init: the grid is
    every forward × backward pair). ``rules`` default per kind (:data:`DEFAULT_RULES`; the angle
    sweep's rules are ``ifa:θ``). ``min_steps`` (data sweep) raises each point's epochs so it gets
    at least that many optimizer steps. The angle sweep measures curvature by default.
    Every point's network is built once here, so a bad setting fails before any training.
    """
    if kind not in SWEEP_KINDS:
        raise InputError(f"unknown sweep {kind!r}: expected one of {', '.join(SWEEP_KINDS)}")
    seeds = tuple(_positive_int("seed", s, 0) for s in seeds)
    if not seeds:
        raise InputError("no seed given: expected e.g. --seeds 0,1,2")
    _unique("--seeds", seeds)
    _positive_int("min_steps", min_steps, 0)
    rule_specs = tuple(parse_rule(r).spec for r in (rules or DEFAULT_RULES[kind]))
    _unique("--algo", rule_specs)
    if kind == "angle":
        rule_specs = ("ifa",)
    raw = tuple(DEFAULT_VALUES[kind] if values is None else values)
    if kind != "rules" and not raw:
        raise InputError(f"the {kind} sweep needs at least one value")
    notes: list[str] = []
    resolved: tuple[Any, ...]
    if kind == "angle":
        resolved = tuple(float(v) for v in raw)
        for theta in resolved:
            _angle_rule(theta)  # validates the range
    elif kind == "depth":
        resolved = tuple(_positive_int("depth", v, 2) for v in raw)
        if base.model != "mlp":
            raise InputError(f"the depth sweep needs model mlp, got {base.model!r}")
    elif kind == "data":
        resolved, note = _cap_sizes(base, tuple(raw))
        notes += [note] if note else []
    elif kind == "init":
        gains = tuple(float(v) for v in raw)
        if any(not (math.isfinite(g) and g > 0) for g in gains):
            raise InputError(f"gains must be positive numbers, got {', '.join(map(str, gains))}")
        _unique("--gains", gains)
        resolved = tuple((fg, bg) for fg in gains for bg in gains)
    else:
        resolved = ()
    _unique(f"the {kind} values", resolved)
    if kind == "angle" and curvature is None:
        curvature = CurvatureSettings()
    if curvature is not None and curvature.at_loss is not None and not base.snapshots:
        base = base.replace(snapshots=True)
        notes.append(
            f"weight snapshots kept: curvature at training loss ≤ {curvature.at_loss:g} needs "
            "the weights of the first epoch that reaches it"
        )
    spec = SweepSpec(
        kind=kind,
        base=base,
        values=resolved,
        rules=rule_specs,
        seeds=seeds,
        min_steps=min_steps,
        curvature=curvature,
        robustness=robustness,
        notes=tuple(notes),
    )
    _check_buildable(spec)
    return spec


def _cap_sizes(base: TrainConfig, sizes: tuple[Any, ...]) -> tuple[tuple[int, ...], str]:
    from hwsim.models.training import load_data

    for n in sizes:
        _positive_int("train size", n, MIN_TRAIN_SIZE)
        if n > MAX_TRAIN_SIZE:
            raise InputError(f"train size must be {MIN_TRAIN_SIZE}..{MAX_TRAIN_SIZE}, got {n}")
    available = len(load_data(base.replace(train_size=None)).y_train)
    capped = tuple(dict.fromkeys(min(n, available) for n in sizes))
    above = [n for n in sizes if n > available]
    note = ""
    if above:
        note = (
            f"train sizes {', '.join(map(str, above))} exceed the {available} training samples "
            f"of {base.dataset!r}: capped at {available}"
        )
    return capped, note


def _check_buildable(spec: SweepSpec) -> None:
    from hwsim.models.training import build_model, load_data

    data = load_data(spec.base.replace(train_size=None))
    seen = set()
    for point in spec.points():
        c = point.config
        key = (c.depth, c.algo, c.forward_gain, c.backward_gain)
        if key not in seen:
            seen.add(key)
            build_model(c, data)


# --------------------------------------------------------------------------- points.jsonl


def read_points(out_dir: str | Path) -> list[dict[str, Any]]:
    """The finished points of a sweep directory, in the order they finished (``[]`` if none).

    A last line cut off by a crash mid-write (no newline) is dropped from the file, so that
    point runs again; any other unreadable line is an :class:`InputError` naming it.
    """
    return read_jsonl(
        Path(out_dir) / POINTS_FILE,
        "one JSON object per finished sweep point",
        missing_ok=True,
        drop_torn_tail=True,
    )


def _layer_mean(angles: dict[str, Any]) -> float | None:
    """Mean of the per-layer angles; None unless every layer has a finite one (a mean over some
    of the layers would not be the mean over layers)."""
    values = list(angles.values())
    return mean_std(values)[0] if all(finite(v) for v in values) else None


def _point_record(
    point: SweepPoint,
    result: RunResult,
    out: Path,
    curvature: dict[str, Any] | None,
    robustness: dict[str, Any] | None,
    wall_s: float,
) -> dict[str, Any]:
    rows = result.metrics
    last = rows[-1]
    metrics: dict[str, Any] = {
        "final_test_accuracy": result.final_test_accuracy,
        "best_test_accuracy": result.best_test_accuracy,
        "final_train_accuracy": last["train_accuracy"],
        "final_train_loss": last["train_loss"],
        "final_alignment_deg_mean": _layer_mean(last["alignment_deg"]),
    }
    if curvature is not None:
        metrics["hessian_trace"] = curvature["trace"]
        metrics["hessian_trace_stderr"] = curvature["trace_stderr"]
        metrics["top_eigenvalue"] = curvature["top_eigenvalues"][0]
    if robustness is not None:
        metrics.update(_robustness_metrics(robustness))
    curves = {
        "epoch": [r["epoch"] for r in rows],
        "test_accuracy": [r["test_accuracy"] for r in rows],
        "train_accuracy": [r["train_accuracy"] for r in rows],
        "train_loss": [r["train_loss"] for r in rows],
        "alignment_deg_mean": [_layer_mean(r["alignment_deg"]) for r in rows],
        "diverged": [bool(r.get("diverged")) for r in rows],
    }
    record = {
        "point": point.point_id,
        "kind": point.kind,
        "value": point.value,
        "rule": point.rule,
        "seed": point.seed,
        "run_dir": str(result.out_dir.relative_to(out)),
        "status": result.status,
        "epochs": point.config.epochs,
        "epochs_completed": result.epochs_completed,
        "metrics": metrics,
        "curves": curves,
        "alignment_deg_initial": rows[0]["alignment_deg"],
        "alignment_deg_final": last["alignment_deg"],
        "curvature": curvature,
        "robustness": robustness,
        "wall_s": round(wall_s, 3),
    }
    return jsonable(record)


def _robustness_metrics(robustness: dict[str, Any]) -> dict[str, Any]:
    metrics = {
        "clean_accuracy": robustness["clean_accuracy"],
        "corruption_accuracy": robustness["mean_corruption_accuracy"],
    }
    positive = [i for i, e in enumerate(robustness["eps"]) if e > 0]
    for attack, sources in robustness["adversarial_accuracy"].items():
        for source, accuracies in sources.items():
            values = [accuracies[i] for i in positive]
            metrics[f"{attack}_{source}_accuracy"] = mean_std(values)[0]
    return metrics


# --------------------------------------------------------------------------- running


def _claim_out(out: Path, spec: SweepSpec, force: bool) -> None:
    """The output-directory guard (:func:`hwsim.core.files.claim_out_dir`), then the spec."""
    identity = jsonable(spec.to_dict())
    claim_out_dir(
        out,
        what="sweep",
        identity_file=SPEC_FILE,
        identity=identity,
        load=json.loads,
        force=force,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / SPEC_FILE, json.dumps(identity, indent=1) + "\n")


def _surrogate_config(spec: SweepSpec, seed: int) -> TrainConfig:
    """The BP surrogate of ``seed``'s points: the base config with seed + 1."""
    return spec.base.replace(algo="bp", seed=seed + 1, snapshots=False)


def _surrogate_path(out: Path, seed: int) -> Path:
    return out / SURROGATES_DIR / f"bp-seed{seed + 1}"


def _surrogate_dir(spec: SweepSpec, out: Path, seed: int) -> Path:
    """The BP surrogate of ``seed`` in ``OUT/surrogates``, trained beforehand by
    :func:`run_sweep` (once, before any point that uses it, so that points running at the same
    time only read it)."""
    path = _surrogate_path(out, seed)
    if not (path / "result.json").is_file():
        raise RuntimeError(f"the BP surrogate {path} has not been trained")
    return path


def _measure(
    spec: SweepSpec, point: SweepPoint, result: RunResult, out: Path, device: str = "cpu"
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Curvature and robustness of a finished point (None where not asked, or diverged)."""
    if result.diverged or not (spec.curvature or spec.robustness):
        return None, None
    from hwsim.experiments.analysis import analyze_curvature, analyze_robustness

    curvature = robustness = None
    if spec.curvature:
        c = spec.curvature
        full = analyze_curvature(
            result.out_dir,
            at_loss=c.at_loss,
            device=device,
            samples=c.samples,
            batch_size=c.batch_size,
            probes=c.probes,
            top_k=c.top_k,
            slq=False,
            seed=c.seed,
        )
        curvature = {key: full[key] for key in _CURVATURE_KEYS}
        if c.at_loss is not None:
            curvature["at_loss"] = _at_loss_record(full["at_loss"])
    if spec.robustness:
        r = spec.robustness
        full = analyze_robustness(
            result.out_dir,
            severities=r.severities,
            eps_list=r.eps,
            attacks=r.attacks,
            pgd_steps=r.pgd_steps,
            surrogate_dir=_surrogate_dir(spec, out, point.seed),
            device=device,
            samples=r.samples,
            seed=r.seed,
        )
        robustness = {
            key: full[key]
            for key in (
                "clean_accuracy",
                "mean_corruption_accuracy",
                "corruption_accuracy",
                "eps",
                "adversarial_accuracy",
                "surrogate",
            )
        }
    return curvature, robustness


#: What a point keeps of ``hessian.json`` (final weights, and at the loss level).
_CURVATURE_KEYS = ("trace", "trace_stderr", "top_eigenvalues", "loss", "eigen_converged")


def _at_loss_record(block: dict[str, Any]) -> dict[str, Any]:
    """A point's record of the curvature at its loss level: where (epoch, training loss,
    weights) or why not (``status``, ``note``: ``never reached (lowest loss X at epoch E)``),
    and the numbers (None where not measured)."""
    measured = block["curvature"] or {}
    return {
        **{key: block[key] for key in block if key not in ("curvature", "criterion")},
        **{key: measured.get(key) for key in _CURVATURE_KEYS},
    }


@dataclass(frozen=True)
class _Task:
    """One unit of work a worker can run on its own: a point, or (``point`` None) the BP
    surrogate of ``seed``. For workers ``out`` is absolute and ``cwd`` is the driver's working
    directory, so a worker started elsewhere (a Ray node) resolves the same paths."""

    spec: SweepSpec
    out: str
    cwd: str
    threads: int | None
    index: int = -1
    point: SweepPoint | None = None
    seed: int = 0
    device: str = "cpu"


def _in_worker(task: _Task) -> contextlib.AbstractContextManager[Any]:
    """The worker's side of a task: the driver's working directory and torch thread count."""
    if os.getcwd() != task.cwd and os.path.isdir(task.cwd):
        os.chdir(task.cwd)
    if task.threads is None:  # in the driver's own process: its setting stands
        return contextlib.nullcontext()
    from hwsim.models.training import torch_threads

    return torch_threads(task.threads)


def _run_point(
    task: _Task, on_epoch: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Train and measure one point; its ``points.jsonl`` record (the driver writes it)."""
    assert task.point is not None
    point, out = task.point, Path(task.out)
    with _in_worker(task):
        started = time.perf_counter()
        result = train(
            point.config, out / RUNS_DIR / point.point_id, on_epoch=on_epoch, device=task.device
        )
        curvature, robustness = _measure(task.spec, point, result, out, task.device)
        return _point_record(
            point, result, out, curvature, robustness, time.perf_counter() - started
        )


def _train_surrogate(task: _Task) -> str:
    """Train (or find finished) the BP surrogate of ``task.seed``; its directory."""
    path = _surrogate_path(Path(task.out), task.seed)
    with _in_worker(task):
        train(_surrogate_config(task.spec, task.seed), path, device=task.device)
    return str(path)


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    force: bool = False,
    on_point: Callable[[SweepPoint, int, int, str], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    executor: Executor | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run every point of ``spec`` not yet in ``OUT/points.jsonl``; write the aggregates.

    Points train and are measured on ``device`` (``auto``, ``cpu``, ``cuda[:N]``);
    ``sweep.json`` records the environment (versions, device, threads, executor, CPU).

    ``executor`` says where the points run (:mod:`hwsim.experiments.executors`; default
    :class:`~hwsim.experiments.executors.LocalExecutor`, one after another in this process).
    Whatever runs them, only this process writes ``points.jsonl``: one line per point as it
    finishes (in the order they finish), so resuming works as with the local executor, and
    ``sweep.json`` does not depend on that order. With robustness, each seed's BP surrogate is
    trained first (once), before the points that read it.

    ``on_point(point, index, total, state)`` is called with state ``"skip"`` (already done),
    ``"start"`` (each attempt), ``"done"`` and ``"failed"`` (every attempt failed);
    ``on_epoch(row)`` with each metrics row of a training run (local executor only).
    Ctrl-C (KeyboardInterrupt) propagates, after the executor cancels what still runs; the points
    finished so far stay in points.jsonl and running again resumes. Points that failed on every
    attempt (``processes``/``ray``: an error, or a worker that died) are reported by
    :class:`~hwsim.experiments.executors.FailedPointsError` once every other point is done and
    saved; no ``sweep.json`` is written then. Returns the ``sweep.json`` document.
    """
    out = Path(out_dir)
    _claim_out(out, spec, force)
    executor = executor or LocalExecutor()
    local = isinstance(executor, LocalExecutor)
    # Workers elsewhere need an absolute path; in this process, paths stay as given (as before).
    common = {
        "spec": spec,
        "out": str(out if local else out.absolute()),
        "cwd": os.getcwd(),
        "device": device,
    }
    threads = None if local else executor.threads
    done = {p["point"] for p in read_points(out)}
    points = spec.points()
    pending = []
    for index, point in enumerate(points):
        if point.point_id in done:
            if on_point:
                on_point(point, index, len(points), "skip")
        else:
            pending.append(_Task(**common, threads=threads, index=index, point=point))
    failed: list[tuple[str, str]] = []
    surrogate_errors: dict[int, str] = {}
    if spec.robustness and pending:
        seeds = sorted({t.point.seed for t in pending if t.point})
        jobs = [_Task(**common, threads=threads, seed=s) for s in seeds]
        with contextlib.closing(executor.map_unordered(_train_surrogate, jobs)) as outcomes:
            for outcome in outcomes:
                if outcome.error is not None:
                    surrogate_errors[outcome.item.seed] = outcome.error
                    failed.append((f"surrogate bp-seed{outcome.item.seed + 1}", outcome.error))

    def started(task: _Task) -> None:
        if on_point and task.point:
            on_point(task.point, task.index, len(points), "start")

    def run(task: _Task) -> dict[str, Any]:
        return _run_point(task, on_epoch)  # in this process: on_epoch is called

    runnable = [t for t in pending if t.point and t.point.seed not in surrogate_errors]
    for task in pending:
        if task.point and task.point.seed in surrogate_errors:
            failed.append(
                (task.point.point_id, f"its BP surrogate (seed {task.point.seed + 1}) failed")
            )
            if on_point:
                on_point(task.point, task.index, len(points), "failed")
    with contextlib.closing(
        executor.map_unordered(run if local else _run_point, runnable, on_start=started)
    ) as outcomes:
        for outcome in outcomes:
            task = outcome.item
            assert task.point is not None
            if outcome.error is not None:
                failed.append((task.point.point_id, outcome.error))
                state = "failed"
            else:
                append_jsonl(out / POINTS_FILE, outcome.result)  # only the driver writes it
                state = "done"
            if on_point:
                on_point(task.point, task.index, len(points), state)
    if failed:
        raise FailedPointsError(f"the {spec.kind} sweep in {out}", failed)
    summary = summarize(spec, read_points(out))
    summary["environment"] = sweep_environment(executor, device)
    write_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    return summary


def sweep_environment(executor: Executor, device: str = "cpu") -> dict[str, Any]:
    """Where a sweep's points ran: :func:`hwsim.models.environment.environment` with the torch
    threads each point trained with, the executor and its workers."""
    from hwsim.models.environment import environment

    env = environment(device, executor.threads)  # None in-process: the driver's own count
    return {**env, "executor": executor.name, "workers": executor.workers}


# --------------------------------------------------------------------------- aggregates


def _curve_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Epoch-wise mean and std over seeds (rows of a diverged epoch are left out)."""
    epochs = sorted({e for r in records for e in r["curves"]["epoch"]})
    out: dict[str, Any] = {"epoch": epochs}
    for name in ("test_accuracy", "train_accuracy", "train_loss", "alignment_deg_mean"):
        means, stds = [], []
        for epoch in epochs:
            values = [
                c[name][i]
                for c in (r["curves"] for r in records)
                for i, e in enumerate(c["epoch"])
                if e == epoch and not c["diverged"][i]
            ]
            mean, std = mean_std(values)  # non-finite values are left out
            means.append(mean)
            stds.append(std)
        out[f"{name}_mean"] = means
        out[f"{name}_std"] = stds
    return out


def aggregate(spec: SweepSpec, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One group per parameter value × rule, in spec order: mean ± std over seeds per metric.

    Each metric's ``values`` are the per-seed values in seed order (non-finite and missing ones
    left out; ``n`` says how many were kept).
    """
    by_point = {p["point"]: p for p in points}
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for point in spec.points():
        record = by_point.get(point.point_id)
        key = (json.dumps(point.value), point.rule)
        group = groups.setdefault(
            key, {"value": point.value, "rule": point.rule, "records": [], "missing": []}
        )
        if record is None:
            group["missing"].append(point.seed)
        else:
            group["records"].append(record)
    out = []
    for group in groups.values():
        records = group.pop("records")
        names = list(dict.fromkeys(name for r in records for name in r["metrics"]))
        group.update(
            {
                "seeds": [r["seed"] for r in records],
                "diverged": sum(r["status"] == "diverged" for r in records),
                "run_dirs": [r["run_dir"] for r in records],
                "metrics": {
                    name: describe(r["metrics"].get(name) for r in records) for name in names
                },
                "curves": _curve_stats(records) if records else None,
            }
        )
        out.append(group)
    return out


def points_in_spec_order(spec: SweepSpec, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``points`` (records of ``points.jsonl``) in the order of ``spec.points()``, whatever the
    order they finished in; records of points not in the spec go last, in their order."""
    rank = {p.point_id: i for i, p in enumerate(spec.points())}
    return sorted(points, key=lambda p: rank.get(p["point"], len(rank)))


def summarize(spec: SweepSpec, points: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``sweep.json`` document of ``spec`` from its finished ``points`` (in any order: the
    document depends only on which points finished and what they measured)."""
    points = points_in_spec_order(spec, points)
    groups = aggregate(spec, points)
    return jsonable(
        {
            "format": SWEEP_FORMAT,
            "version": SWEEP_VERSION,
            "kind": spec.kind,
            "parameter": spec.parameter,
            "spec": spec.to_dict(),
            "measured": MEASURED,
            "statistics": (
                "per group (parameter value × rule): mean and sample standard deviation "
                "(n − 1 denominator; null with one seed) over seeds"
            ),
            "points": len(points),
            "points_expected": len(spec.points()),
            "complete": all(not g["missing"] for g in groups),
            "compute_s": round(math.fsum(p.get("wall_s", 0.0) for p in points), 1),
            "figure": f"{spec.kind}.png",
            "groups": groups,
        }
    )
