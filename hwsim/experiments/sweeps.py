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
- ``sweep.json`` and ``<kind>.png``: the aggregates (mean ± sample std over seeds per parameter
  value and rule) and a figure, written atomically at the end.

A diverged run is a result like any other: its final accuracy is that of the weights it ended
with (evaluated like every epoch), and the groups count how many seeds diverged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.files import jsonable, write_atomic
from hwsim.core.rules import parse_rule, rule_dirname
from models.config import TrainConfig
from models.data import MAX_TRAIN_SIZE, MIN_TRAIN_SIZE
from models.training import RunResult, train

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
    "read_points",
    "run_sweep",
    "summarize",
    "sweep_figure",
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
#: Fast defaults for a 2-core CPU: float MLP 784-256×5-10 on mnist5k, Adam 1e-3 (docs/learning.md).
DEFAULT_BASE = TrainConfig(dataset="mnist5k", depth=6, width=256, epochs=5, snapshots=False)

SPEC_FILE = "sweep-spec.json"
POINTS_FILE = "points.jsonl"
SUMMARY_FILE = "sweep.json"
RUNS_DIR = "runs"
#: Metrics aggregated over seeds, with what they are (copied into ``sweep.json``).
MEASURED = {
    "final_test_accuracy": "test accuracy after the last epoch run (a diverged run: its last row)",
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
    """How the Hessian is measured at the end of training (``analyze_curvature`` arguments)."""

    samples: int = 1000
    batch_size: int = 250
    probes: int = 30
    top_k: int = 1
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored in the spec)."""
        return {
            "samples": self.samples,
            "batch_size": self.batch_size,
            "probes": self.probes,
            "top_k": self.top_k,
            "seed": self.seed,
        }


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
    from models.training import load_data

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
    from models.training import build_model, load_data

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
    """The finished points of a sweep directory, in the order they finished.

    A last line cut off by a crash mid-write (no newline) is dropped from the file; any other
    unreadable line is an :class:`InputError`.
    """
    path = Path(out_dir) / POINTS_FILE
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        write_atomic(path, text.encode())
    points = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            points.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
    return points


def _append_point(out: Path, record: dict[str, Any]) -> None:
    with open(out / POINTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _mean_or_none(values: Sequence[Any]) -> float | None:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return statistics.fmean(finite) if finite and len(finite) == len(values) else None


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
        "final_test_accuracy": last["test_accuracy"],
        "best_test_accuracy": result.best_test_accuracy,
        "final_train_accuracy": last["train_accuracy"],
        "final_train_loss": last["train_loss"],
        "final_alignment_deg_mean": _mean_or_none(list(last["alignment_deg"].values())),
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
        "alignment_deg_mean": [_mean_or_none(list(r["alignment_deg"].values())) for r in rows],
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
            metrics[f"{attack}_{source}_accuracy"] = statistics.fmean(values) if values else None
    return metrics


# --------------------------------------------------------------------------- running


def _prepare_out(out: Path, spec: SweepSpec, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    spec_path = out / SPEC_FILE
    if force:
        for name in (SPEC_FILE, POINTS_FILE, SUMMARY_FILE, f"{spec.kind}.png"):
            (out / name).unlink(missing_ok=True)
        for name in (RUNS_DIR, "surrogates"):
            shutil.rmtree(out / name, ignore_errors=True)
    elif spec_path.exists():
        try:
            previous = json.loads(spec_path.read_text())
        except json.JSONDecodeError:
            previous = None
        if previous != jsonable(spec.to_dict()):
            raise InputError(
                f"{out} holds a different sweep ({spec_path}); choose another --out, "
                "or pass --force to start over"
            )
    elif (out / POINTS_FILE).exists() or (out / RUNS_DIR).exists():
        raise InputError(
            f"{out} holds sweep output but no {SPEC_FILE}; choose another --out, or pass --force"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(spec_path, (json.dumps(jsonable(spec.to_dict()), indent=1) + "\n").encode())


def _surrogate_dir(spec: SweepSpec, out: Path, seed: int) -> Path:
    """A BP surrogate per seed (base config, seed + 1), trained once into ``OUT/surrogates``."""
    config = spec.base.replace(algo="bp", seed=seed + 1, snapshots=False)
    path = out / "surrogates" / f"bp-seed{seed + 1}"
    train(config, path)
    return path


def _measure(
    spec: SweepSpec, point: SweepPoint, result: RunResult, out: Path
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
            samples=c.samples,
            batch_size=c.batch_size,
            probes=c.probes,
            top_k=c.top_k,
            slq=False,
            seed=c.seed,
        )
        curvature = {
            key: full[key]
            for key in ("trace", "trace_stderr", "top_eigenvalues", "loss", "eigen_converged")
        }
    if spec.robustness:
        r = spec.robustness
        full = analyze_robustness(
            result.out_dir,
            severities=r.severities,
            eps_list=r.eps,
            attacks=r.attacks,
            pgd_steps=r.pgd_steps,
            surrogate_dir=_surrogate_dir(spec, out, point.seed),
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


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    force: bool = False,
    on_point: Callable[[SweepPoint, int, int, str], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every point of ``spec`` not yet in ``OUT/points.jsonl``; write the aggregates.

    ``on_point(point, index, total, state)`` is called with state ``"skip"`` (already done),
    ``"start"`` and ``"done"``; ``on_epoch(row)`` with each metrics row of a training run.
    Ctrl-C (KeyboardInterrupt) propagates; the points finished so far stay in points.jsonl and
    running again resumes. Returns the ``sweep.json`` document.
    """
    out = Path(out_dir)
    _prepare_out(out, spec, force)
    done = {p["point"] for p in read_points(out)}
    points = spec.points()
    for index, point in enumerate(points):
        if point.point_id in done:
            if on_point:
                on_point(point, index, len(points), "skip")
            continue
        if on_point:
            on_point(point, index, len(points), "start")
        started = time.perf_counter()
        result = train(point.config, out / RUNS_DIR / point.point_id, on_epoch=on_epoch)
        curvature, robustness = _measure(spec, point, result, out)
        record = _point_record(
            point, result, out, curvature, robustness, time.perf_counter() - started
        )
        _append_point(out, record)
        done.add(point.point_id)
        if on_point:
            on_point(point, index, len(points), "done")
    summary = summarize(spec, read_points(out))
    png = sweep_figure(summary)
    write_atomic(out / f"{spec.kind}.png", png)
    write_atomic(out / SUMMARY_FILE, (json.dumps(summary, indent=1) + "\n").encode())
    return summary


# --------------------------------------------------------------------------- aggregates


def _stat(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (n − 1; None for one value) of ``values``."""
    return {
        "mean": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
        "values": values,
    }


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _values(records: list[dict[str, Any]], name: str) -> list[float]:
    """Metric ``name`` of each record that has a finite value for it, in record order."""
    return [r["metrics"][name] for r in records if _finite(r["metrics"].get(name))]


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
                if e == epoch and not c["diverged"][i] and _finite(c[name][i])
            ]
            s = _stat(values)
            means.append(s["mean"])
            stds.append(s["std"])
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
                "metrics": {name: _stat(_values(records, name)) for name in names},
                "curves": _curve_stats(records) if records else None,
            }
        )
        out.append(group)
    return out


def summarize(spec: SweepSpec, points: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``sweep.json`` document of ``spec`` from its finished ``points``."""
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
            "compute_s": round(sum(p.get("wall_s", 0.0) for p in points), 1),
            "figure": f"{spec.kind}.png",
            "groups": groups,
        }
    )


# --------------------------------------------------------------------------- figures


def _errorbar(ax: Any, xs: list[Any], groups: list[dict[str, Any]], metric: str, **kw: Any):
    keep = [(x, g) for x, g in zip(xs, groups, strict=True) if g["metrics"].get(metric)]
    keep = [(x, g) for x, g in keep if g["metrics"][metric]["mean"] is not None]
    if not keep:
        return None
    return ax.errorbar(
        [x for x, _ in keep],
        [g["metrics"][metric]["mean"] for _, g in keep],
        yerr=[g["metrics"][metric]["std"] or 0.0 for _, g in keep],
        marker="o",
        capsize=3,
        **kw,
    )


def _mark_diverged(ax: Any, xs: list[Any], groups: list[dict[str, Any]], color: Any) -> None:
    for x, g in zip(xs, groups, strict=True):
        if g["diverged"]:
            mean = g["metrics"]["final_test_accuracy"]["mean"]
            ax.plot([x], [mean], marker="x", color=color, markersize=11, mew=2)
            ax.annotate(
                f"{g['diverged']}/{len(g['seeds'])} div.",
                (x, mean),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=color,
            )


def _by_rule(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for g in summary["groups"]:
        out.setdefault(g["rule"], []).append(g)
    return out


def _angle_figure(summary: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    groups = summary["groups"]
    thetas = [g["value"] for g in groups]
    robust = any("pgd_true_accuracy" in g["metrics"] for g in groups)
    fig, axes = plt.subplots(2, 3 if robust else 2, figsize=(15 if robust else 10.5, 7.5))
    axes = axes.flatten()
    cmap = plt.get_cmap("viridis")
    colors = [cmap(i / max(1, len(groups) - 1)) for i in range(len(groups))]
    ax = axes[0]
    _errorbar(ax, thetas, groups, "final_test_accuracy", color="#4C72B0", label="final")
    _errorbar(ax, thetas, groups, "best_test_accuracy", color="#999999", ls="--", label="best")
    ax.set(xlabel="initial angle θ (deg)", ylabel="test accuracy", title="Accuracy vs θ")
    ax.legend()
    for ax, name, title in (
        (axes[1], "alignment_deg_mean", "W-vs-B angle over training (mean over layers)"),
        (axes[2], "test_accuracy", "Learning curves (test accuracy)"),
    ):
        for g, color in zip(groups, colors, strict=True):
            if g["curves"]:
                c = g["curves"]
                ax.plot(c["epoch"], c[f"{name}_mean"], color=color, label=f"θ={g['value']:g}")
        ax.set(xlabel="epoch (0 = init)", title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    axes[1].set_ylabel("degrees")
    axes[2].set_ylabel("test accuracy")
    ax = axes[3]
    means = [(g["metrics"].get(m) or {}).get("mean") for g in groups for m in LOG_METRICS]
    log = _all_positive(means)
    if _errorbar(ax, thetas, groups, "hessian_trace", color="#4C72B0", label="trace"):
        ax.set_ylabel("Hessian trace", color="#4C72B0")
        ax.set_yscale("log" if log else "linear")
        twin = ax.twinx()
        _errorbar(twin, thetas, groups, "top_eigenvalue", color="#C44E52", label="top eig.")
        twin.set_ylabel("top eigenvalue", color="#C44E52")
        twin.set_yscale("log" if log else "linear")
        twin.grid(False)
    title = "Curvature at the end (BP view" + (", log)" if log else ")")
    ax.set(xlabel="initial angle θ (deg)", title=title)
    if robust:
        ax = axes[4]
        sources = (("true", "#C44E52"), ("feedback", "#DD8452"), ("transfer", "#8172B3"))
        for source, color in sources:
            _errorbar(ax, thetas, groups, f"pgd_{source}_accuracy", color=color, label=source)
        ax.set(xlabel="initial angle θ (deg)", ylabel="accuracy", title="PGD (mean over ε > 0)")
        ax.legend(fontsize=7)
        ax = axes[5]
        _errorbar(ax, thetas, groups, "corruption_accuracy", color="#55A868", label="corrupted")
        _errorbar(ax, thetas, groups, "clean_accuracy", color="#999999", ls="--", label="clean")
        ax.set(xlabel="initial angle θ (deg)", ylabel="accuracy", title="Corruptions (mean)")
        ax.legend(fontsize=7)
    return fig


def _line_figure(summary: dict[str, Any], xlabel: str, log_x: bool) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    palette = plt.get_cmap("tab10")
    for i, (rule, groups) in enumerate(_by_rule(summary).items()):
        xs = [g["value"] for g in groups]
        color = palette(i % 10)
        _errorbar(ax, xs, groups, "final_test_accuracy", color=color, label=rule)
        _mark_diverged(ax, xs, groups, color)
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="final test accuracy (mean ± std over seeds)")
    ax.set_title(f"{summary['kind']} sweep on {summary['spec']['base']['dataset']} (× = diverged)")
    ax.legend()
    return fig


def _init_figure(summary: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    by_rule = _by_rule(summary)
    gains = sorted({g["value"][0] for g in summary["groups"]})
    fig, axes = plt.subplots(
        1,
        len(by_rule),
        figsize=(4.6 * len(by_rule) + 1.2, 4.4),
        squeeze=False,
        layout="constrained",
    )
    image = None
    for ax, (rule, groups) in zip(axes[0], by_rule.items(), strict=True):
        grid = [[math.nan] * len(gains) for _ in gains]
        for g in groups:
            mean = g["metrics"].get("final_train_accuracy", {}).get("mean")
            i, j = gains.index(g["value"][1]), gains.index(g["value"][0])
            grid[i][j] = math.nan if mean is None else mean
            label = "—" if mean is None else f"{mean:.2f}"
            if g["diverged"]:
                label += "\n(div.)"
            dark = mean is None or mean < 0.6  # viridis is dark below ~0.6
            ax.text(
                j,
                i,
                label,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
        image = ax.imshow(grid, origin="lower", vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(gains)), [f"{v:g}" for v in gains])
        ax.set_yticks(range(len(gains)), [f"{v:g}" for v in gains])
        ax.set(xlabel="forward gain", title=f"{rule}: final train accuracy")
        if ax is axes[0][0]:
            ax.set_ylabel("backward gain")
        ax.grid(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), label="final train accuracy (mean over seeds)")
    return fig


#: Curvature spans orders of magnitude across rules and angles: plotted on a log axis.
LOG_METRICS = ("hessian_trace", "top_eigenvalue")


def _all_positive(values: Any) -> bool:
    values = list(values)
    return bool(values) and all(_finite(v) and v > 0 for v in values)


def _rules_figure(summary: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    groups = summary["groups"]
    rules = [g["rule"] for g in groups]
    panels = [("final_test_accuracy", "final test accuracy")]
    if any("hessian_trace" in g["metrics"] for g in groups):
        panels += [("hessian_trace", "Hessian trace (BP view)"), ("top_eigenvalue", "top eig.")]
    if any("pgd_true_accuracy" in g["metrics"] for g in groups):
        panels += [
            ("pgd_true_accuracy", "PGD, true gradient"),
            ("pgd_transfer_accuracy", "PGD, transfer"),
            ("corruption_accuracy", "corruptions"),
        ]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flatten()[len(panels) :]:
        ax.set_visible(False)
    for ax, (metric, title) in zip(axes.flatten(), panels, strict=False):
        stats = [g["metrics"].get(metric) or {} for g in groups]
        if metric in LOG_METRICS and _all_positive(s.get("mean") for s in stats):
            ax.set_yscale("log")
            title += " (log)"
        ax.bar(
            range(len(rules)),
            [s.get("mean") or 0.0 for s in stats],
            yerr=[s.get("std") or 0.0 for s in stats],
            capsize=3,
            color=[plt.get_cmap("tab10")(i % 10) for i in range(len(rules))],
        )
        ax.set_xticks(range(len(rules)), rules, rotation=30)
        ax.set_title(title)
    return fig


def sweep_figure(summary: dict[str, Any]) -> bytes:
    """The figure of a sweep (``OUT/<kind>.png``) as PNG bytes, rendered with the report style."""
    import matplotlib

    from hwsim.render.style import (  # one figure style for every hwsim figure
        FIGURE_STYLE,
        png_bytes,
    )

    kind = summary["kind"]
    with matplotlib.rc_context(FIGURE_STYLE):
        if kind == "angle":
            fig = _angle_figure(summary)
        elif kind == "depth":
            fig = _line_figure(summary, "depth (weight layers)", log_x=False)
        elif kind == "data":
            fig = _line_figure(summary, "training samples", log_x=True)
        elif kind == "init":
            fig = _init_figure(summary)
        else:
            fig = _rules_figure(summary)
        if kind != "init":  # the heat maps use a constrained layout (shared colorbar)
            fig.tight_layout()
        return png_bytes(fig)
