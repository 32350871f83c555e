"""``hwsim reproduce``: run the sweeps that test each claim of the paper and write REPRODUCTION.md.

A :class:`ReproducePlan` names the base network and data, the seeds and every sweep
(:mod:`hwsim.experiments.sweeps`): a rule comparison with curvature and robustness
(``rules``), the initial angle (``angle``), depth (``depth``), training-set size (``data``) and
init gains (``init``).
:func:`run_reproduce` runs them into ``OUT/sweeps/<name>/`` (each resumable on its own), then
turns the aggregates into one row per claim and measurement with a verdict computed by
:func:`verdict`, and writes ``OUT/reproduction.json`` and ``OUT/REPRODUCTION.md``.

The verdict rule (also stated in the report): a row compares a quantity ``d`` with the region
the claim puts it in (``d > 0``, ``d < 0`` or ``|d| ≤ tol``). For a difference of two groups'
seed means, ``d = mean_A − mean_B`` with spread ``s = std_A + std_B``; for a per-seed statistic
(a slope, a difference of gaps), ``d`` is its mean over seeds and ``s`` its standard deviation
(sample standard deviations). The row *agrees* when ``[d − s, d + s]`` lies inside the region,
*does not agree* when it lies entirely outside, and is *inconclusive (spread overlaps)*
otherwise; with one seed there is no spread and the row is inconclusive.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.files import jsonable, write_atomic
from hwsim.experiments.sweeps import (
    CurvatureSettings,
    RobustnessSettings,
    SweepPoint,
    SweepSpec,
    make_spec,
    read_points,
    run_sweep,
)
from hwsim.render.report import format_sig
from models.config import TrainConfig

__all__ = [
    "AGREES",
    "DISAGREES",
    "NO_DATA",
    "NO_SPREAD",
    "OVERLAP",
    "SCALES",
    "VERDICT_RULE",
    "ClaimRow",
    "ReproducePlan",
    "evaluate_claims",
    "plan_for",
    "render_report",
    "row_numbers",
    "run_reproduce",
    "verdict",
]

SCALES = ("small", "full")
REPORT_FORMAT = "hwsim-reproduction"
REPORT_VERSION = 1
PLAN_FILE = "plan.json"
SWEEPS_DIR = "sweeps"
AGREES = "agrees"
DISAGREES = "does not agree"
OVERLAP = "inconclusive (spread overlaps)"
NO_SPREAD = "inconclusive (one seed: no spread)"
NO_DATA = "inconclusive (not measured)"
#: The rule every verdict follows, as the report states it.
VERDICT_RULE = (
    "Each row compares a number d with the region the claim puts it in: d > 0, d < 0, or "
    "|d| ≤ tol for 'close to'. For two groups (e.g. IFA and FA over the same seeds) "
    "d = mean_A − mean_B and its spread s = std_A + std_B; for a per-seed statistic (a slope, a "
    "difference of gaps) d is its mean over seeds and s its standard deviation (all standard "
    "deviations are sample ones, n − 1, over seeds). **agrees**: all of [d − s, d + s] lies "
    "inside the claimed region (for two groups: their mean ± std intervals are disjoint and "
    "ordered as claimed); **does not agree**: all of it lies outside; **inconclusive (spread "
    "overlaps)**: it straddles the region's edge. With one seed there is no spread, so no verdict. "
    "This is a descriptive rule (±1 std), not a significance test: with 2–5 seeds, 'agrees' "
    "means the effect is larger than the seed-to-seed spread, nothing more."
)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ReproducePlan:
    """Everything ``reproduce`` runs: base network and data, seeds, and each sweep's values.

    ``rules`` are compared at the base config with curvature and robustness (every ``ifa:θ``
    among them is a "moderate angle" for the robustness claims). The init grid trains with
    ``init_optimizer`` at ``init_lr``: under Adam the backward gain only rescales every error,
    which Adam's per-parameter normalization cancels, so the grid is flat along it up to seed
    noise.
    ``close_tolerance`` is the accuracy gap that still counts as "close to BP".
    """

    scale: str
    base: TrainConfig
    seeds: tuple[int, ...]
    rules: tuple[str, ...] = ("bp", "fa", "ifa", "ifa:30", "ifa:45", "ifa:60")
    angles: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0)
    depths: tuple[int, ...] = (2, 4, 6, 8, 10)
    depth_rules: tuple[str, ...] = ("bp", "fa", "ifa")
    sizes: tuple[int, ...] = (100, 500, 1000, 5000, 10000, 50000)
    data_rules: tuple[str, ...] = ("bp", "fa", "ifa")
    data_min_steps: int = 0
    gains: tuple[float, ...] = (0.5, 1.0, 1.414, 2.0)
    init_rules: tuple[str, ...] = ("ifa", "fa")
    init_seeds: tuple[int, ...] | None = None
    init_optimizer: str = "sgd"
    init_lr: float = 0.01
    curvature: CurvatureSettings = field(default_factory=CurvatureSettings)
    robustness: RobustnessSettings = field(default_factory=RobustnessSettings)
    close_tolerance: float = 0.02

    def specs(self) -> dict[str, SweepSpec]:
        """The sweeps of the plan by name, in the order they run (validated)."""
        return {
            "rules": make_spec(
                "rules",
                base=self.base,
                rules=self.rules,
                seeds=self.seeds,
                curvature=self.curvature,
                robustness=self.robustness,
            ),
            "angle": make_spec(
                "angle",
                base=self.base,
                values=self.angles,
                seeds=self.seeds,
                curvature=self.curvature,
            ),
            "depth": make_spec(
                "depth",
                base=self.base,
                values=self.depths,
                rules=self.depth_rules,
                seeds=self.seeds,
            ),
            "data": make_spec(
                "data",
                base=self.base,
                values=self.sizes,
                rules=self.data_rules,
                seeds=self.seeds,
                min_steps=self.data_min_steps,
            ),
            "init": make_spec(
                "init",
                base=self.base.replace(optimizer=self.init_optimizer, lr=self.init_lr),
                values=self.gains,
                rules=self.init_rules,
                seeds=self.init_seeds or self.seeds,
            ),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (``plan.json``)."""
        return {
            "scale": self.scale,
            "base": self.base.to_dict(),
            "seeds": list(self.seeds),
            "rules": list(self.rules),
            "angles": list(self.angles),
            "depths": list(self.depths),
            "depth_rules": list(self.depth_rules),
            "sizes": list(self.sizes),
            "data_rules": list(self.data_rules),
            "data_min_steps": self.data_min_steps,
            "gains": list(self.gains),
            "init_rules": list(self.init_rules),
            "init_seeds": list(self.init_seeds) if self.init_seeds else None,
            "init_optimizer": self.init_optimizer,
            "init_lr": self.init_lr,
            "curvature": self.curvature.to_dict(),
            "robustness": self.robustness.to_dict(),
            "close_tolerance": self.close_tolerance,
        }


def plan_for(
    scale: str, *, dataset: str | None = None, data_dir: str | None = None
) -> ReproducePlan:
    """The plan of ``scale``: ``small`` (2-core CPU, under 30 min) or ``full`` (paper scale).

    ``small``: float MLP 784-256×5-10 on ``mnist5k`` (4,000/1,000), Adam 1e-3, batch 64,
    5 epochs, seeds 0–2 (the init grid: seeds 0–1); training sizes capped at 4,000 and at least
    300 steps per point. ``full``: the same network on ``mnist`` (60,000/10,000, files in
    ``data_dir``), 20 epochs, seeds 0–4, sizes 100–50,000 with at least 3,000 steps, curvature
    with 100 probes and robustness on 10,000 test samples.
    """
    if scale not in SCALES:
        raise InputError(f"unknown scale {scale!r}: expected one of {', '.join(SCALES)}")
    if scale == "small":
        base = TrainConfig(
            dataset=dataset or "mnist5k",
            data_dir=data_dir,
            depth=6,
            width=256,
            epochs=5,
            snapshots=False,
        )
        return ReproducePlan(
            scale="small",
            base=base,
            seeds=(0, 1, 2),
            init_seeds=(0, 1),
            data_min_steps=300,
            curvature=CurvatureSettings(samples=1000, batch_size=250, probes=30, top_k=1),
            robustness=RobustnessSettings(samples=1000, eps=(0.0, 0.01, 0.03, 0.1)),
        )
    base = TrainConfig(
        dataset=dataset or "mnist",
        data_dir=data_dir,
        depth=6,
        width=256,
        epochs=20,
        snapshots=False,
    )
    return ReproducePlan(
        scale="full",
        base=base,
        seeds=(0, 1, 2, 3, 4),
        data_min_steps=3000,
        curvature=CurvatureSettings(samples=2000, batch_size=500, probes=100, top_k=3),
        robustness=RobustnessSettings(samples=10000, eps=(0.0, 0.01, 0.02, 0.03, 0.05, 0.1)),
    )


# --------------------------------------------------------------------------- verdicts


def verdict(
    difference: float | None, spread: float | None, *, region: str, tolerance: float = 0.0
) -> str:
    """The verdict of one row (module docstring): is ``[d − s, d + s]`` inside ``region``?

    ``region`` is ``"positive"`` (d > 0), ``"negative"`` (d < 0) or ``"within"``
    (|d| ≤ ``tolerance``).
    """
    if region not in ("positive", "negative", "within"):
        raise ValueError(f"unknown region {region!r}")
    if difference is None or not math.isfinite(difference):
        return NO_DATA
    if spread is None or not math.isfinite(spread):
        return NO_SPREAD
    low, high = difference - spread, difference + spread
    if region == "positive":
        inside, outside = low > 0, high <= 0
    elif region == "negative":
        inside, outside = high < 0, low >= 0
    else:
        inside = -tolerance <= low and high <= tolerance
        outside = high < -tolerance or low > tolerance
    return AGREES if inside else DISAGREES if outside else OVERLAP


@dataclass(frozen=True)
class ClaimRow:
    """One measurement of one claim: the numbers, where they come from, and the verdict.

    ``left``/``right`` are group aggregates as in ``sweep.json`` (``mean``, ``std``, ``n``,
    ``values``) with a ``label`` and a ``source`` (sweep, value, rule, metric); a per-seed
    statistic has ``right`` None and its values in ``left``.
    """

    claim_id: str
    claim: str
    measurement: str
    left: dict[str, Any]
    right: dict[str, Any] | None
    difference: float | None
    spread: float | None
    region: str
    tolerance: float
    verdict: str
    unit: str = "accuracy"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (one entry of ``claims`` in ``reproduction.json``)."""
        return {
            "claim_id": self.claim_id,
            "claim": self.claim,
            "measurement": self.measurement,
            "left": self.left,
            "right": self.right,
            "difference": self.difference,
            "spread": self.spread,
            "region": self.region,
            "tolerance": self.tolerance,
            "verdict": self.verdict,
            "unit": self.unit,
        }


CLAIMS = {
    "C1": "IFA learns close to BP",
    "C2": "IFA learns better than FA",
    "C3": "IFA beats FA especially in deeper networks (depth 2–10)",
    "C4": "IFA beats FA especially with little data (100–50,000 samples)",
    "C5": "IFA converges to flatter minima (smaller Hessian trace and top eigenvalue)",
    "C6": "Final accuracy falls as the initial angle grows",
    "C7": "Moderate initial angles can be more robust to adversarial perturbations than BP",
    "C8": "Corruption robustness improves (IFA and soft IFA vs BP)",
    "C9": "IFA learns more stably than FA across init gains (Fig 3a)",
}


def _group(summary: dict[str, Any], value: Any, rule: str) -> dict[str, Any] | None:
    for g in summary["groups"]:
        if g["value"] == value and g["rule"] == rule:
            return g
    return None


def _side(summary: dict[str, Any], sweep: str, value: Any, rule: str, metric: str) -> dict:
    group = _group(summary, value, rule)
    stat = (group or {}).get("metrics", {}).get(metric) or {
        "mean": None,
        "std": None,
        "n": 0,
        "values": [],
    }
    return {
        **stat,
        "label": rule,
        "source": {"sweep": sweep, "value": value, "rule": rule, "metric": metric},
    }


def _two_groups(
    claim_id: str,
    measurement: str,
    left: dict[str, Any],
    right: dict[str, Any],
    region: str,
    *,
    tolerance: float = 0.0,
    unit: str = "accuracy",
) -> ClaimRow:
    difference = spread = None
    if left["mean"] is not None and right["mean"] is not None:
        difference = left["mean"] - right["mean"]
        if left["std"] is not None and right["std"] is not None:
            spread = left["std"] + right["std"]
    return ClaimRow(
        claim_id,
        CLAIMS[claim_id],
        measurement,
        left,
        right,
        difference,
        spread,
        region,
        tolerance,
        verdict(difference, spread, region=region, tolerance=tolerance),
        unit,
    )


def _per_seed(
    claim_id: str, measurement: str, label: str, values: dict[int, float], region: str, unit: str
) -> ClaimRow:
    seeds = sorted(values)
    numbers = [values[s] for s in seeds]
    mean = statistics.fmean(numbers) if numbers else None
    std = statistics.stdev(numbers) if len(numbers) > 1 else None
    left = {"mean": mean, "std": std, "n": len(numbers), "values": numbers, "seeds": seeds}
    left["label"] = label
    return ClaimRow(
        claim_id,
        CLAIMS[claim_id],
        measurement,
        left,
        None,
        mean,
        std,
        region,
        0.0,
        verdict(mean, std, region=region),
        unit,
    )


def _point_metric(points: list[dict[str, Any]], metric: str) -> dict[tuple[str, str, int], float]:
    """``(json value, rule, seed) → metric`` over finished points with a finite value."""
    out = {}
    for p in points:
        v = p["metrics"].get(metric)
        if isinstance(v, int | float) and math.isfinite(v):
            out[(json.dumps(p["value"]), p["rule"], p["seed"])] = float(v)
    return out


def _gap_by_seed(
    points: list[dict[str, Any]], value: Any, better: str, worse: str, metric: str
) -> dict[int, float]:
    table = _point_metric(points, metric)
    key = json.dumps(value)
    seeds = {s for (v, r, s) in table if v == key}
    return {
        s: table[(key, better, s)] - table[(key, worse, s)]
        for s in seeds
        if (key, better, s) in table and (key, worse, s) in table
    }


def _slope_by_seed(points: list[dict[str, Any]], metric: str) -> dict[int, float]:
    """Least-squares slope of ``metric`` on θ per seed, per 90° (angle sweep points)."""
    by_seed: dict[int, list[tuple[float, float]]] = {}
    for (value, _, seed), v in _point_metric(points, metric).items():
        by_seed.setdefault(seed, []).append((float(json.loads(value)), v))
    slopes = {}
    for seed, pairs in by_seed.items():
        if len(pairs) < 2:
            continue
        mx = statistics.fmean(x for x, _ in pairs)
        my = statistics.fmean(y for _, y in pairs)
        sxx = sum((x - mx) ** 2 for x, _ in pairs)
        slopes[seed] = 90.0 * sum((x - mx) * (y - my) for x, y in pairs) / sxx
    return slopes


def _soft_rules(rules: list[str]) -> list[str]:
    return [r for r in rules if r.startswith("ifa:")]


def _base_values(plan: ReproducePlan, spec: SweepSpec) -> list[Any]:
    """The swept values whose runs train exactly the base configuration (the rules sweep's).

    Their accuracy rows would repeat the rule comparison's with the very same numbers, so the
    per-value rows leave them out (the sweep tables and figures keep them).
    """
    from models.training import load_data

    available = len(load_data(plan.base.replace(train_size=None)).y_train)

    def normalized(config: TrainConfig) -> TrainConfig:
        size = None if config.train_size in (None, available) else config.train_size
        return config.replace(train_size=size)

    same = []
    for value in spec.values:
        configs = [p.config for p in spec.points() if p.value == value]
        if all(
            normalized(c) == normalized(plan.base.replace(algo=c.algo, seed=c.seed))
            for c in configs
        ):
            same.append(value)
    return same


def evaluate_claims(
    plan: ReproducePlan,
    specs: dict[str, SweepSpec],
    summaries: dict[str, dict[str, Any]],
    points: dict[str, list[dict[str, Any]]],
) -> list[ClaimRow]:
    """Every claim row of the plan from the sweeps' ``sweep.json`` and ``points.jsonl``."""
    rows: list[ClaimRow] = []
    acc = "final_test_accuracy"
    rules = summaries["rules"]
    have = {g["rule"] for g in rules["groups"]}

    def side(sweep: str, value: Any, rule: str, metric: str = acc) -> dict[str, Any]:
        return _side(summaries[sweep], sweep, value, rule, metric)

    if {"ifa", "bp"} <= have:
        rows.append(
            _two_groups(
                "C1",
                f"final test accuracy, IFA − BP, within ±{plan.close_tolerance:g}",
                side("rules", None, "ifa"),
                side("rules", None, "bp"),
                "within",
                tolerance=plan.close_tolerance,
            )
        )
    if {"ifa", "fa"} <= have:
        rows.append(
            _two_groups(
                "C2",
                "final test accuracy, IFA − FA > 0",
                side("rules", None, "ifa"),
                side("rules", None, "fa"),
                "positive",
            )
        )
    for sweep, claim_id, values, unit_name in (
        ("depth", "C3", plan.depths, "depth"),
        ("data", "C4", _resolved_values(summaries["data"]), "training samples"),
    ):
        sweep_rules = set(summaries[sweep]["spec"]["rules"])
        repeated = _base_values(plan, specs[sweep])
        for value in [v for v in values if v not in repeated]:
            if {"ifa", "bp"} <= sweep_rules:
                rows.append(
                    _two_groups(
                        "C1",
                        f"final test accuracy at {unit_name} {value}, IFA − BP, "
                        f"within ±{plan.close_tolerance:g}",
                        side(sweep, value, "ifa"),
                        side(sweep, value, "bp"),
                        "within",
                        tolerance=plan.close_tolerance,
                    )
                )
            rows.append(
                _two_groups(
                    claim_id,
                    f"final test accuracy at {unit_name} {value}, IFA − FA > 0",
                    side(sweep, value, "ifa"),
                    side(sweep, value, "fa"),
                    "positive",
                )
            )
        if len(values) >= 2:
            small, large = min(values), max(values)
            far, near = (large, small) if sweep == "depth" else (small, large)
            gap_far = _gap_by_seed(points[sweep], far, "ifa", "fa", acc)
            gap_near = _gap_by_seed(points[sweep], near, "ifa", "fa", acc)
            rows.append(
                _per_seed(
                    claim_id,
                    f"per seed: (IFA − FA) at {unit_name} {far} minus (IFA − FA) at {near} > 0",
                    "gap difference",
                    {s: gap_far[s] - gap_near[s] for s in gap_far if s in gap_near},
                    "positive",
                    "accuracy",
                )
            )
    for metric, name in (("hessian_trace", "Hessian trace"), ("top_eigenvalue", "top eigenvalue")):
        rows.append(
            _two_groups(
                "C5",
                f"{name} at the end of training (BP view), IFA − BP < 0",
                side("rules", None, "ifa", metric),
                side("rules", None, "bp", metric),
                "negative",
                unit=name,
            )
        )
    angles = list(plan.angles)
    if len(angles) >= 2:
        low, high = min(angles), max(angles)
        low_rule, high_rule = _angle_rule_name(low), _angle_rule_name(high)
        rows.append(
            _two_groups(
                "C6",
                f"final test accuracy, θ = {low:g}° minus θ = {high:g}° > 0",
                side("angle", low, low_rule),
                side("angle", high, high_rule),
                "positive",
            )
        )
        rows.append(
            _per_seed(
                "C6",
                "per seed: least-squares slope of final test accuracy on θ, per 90°, < 0",
                "slope per 90°",
                _slope_by_seed(points["angle"], acc),
                "negative",
                "accuracy per 90°",
            )
        )
    for rule in _soft_rules(list(plan.rules)):
        for source, how in (("true", "white box, true gradient"), ("transfer", "black box")):
            rows.append(
                _two_groups(
                    "C7",
                    f"PGD accuracy ({how}), mean over ε > 0, {rule} − BP > 0",
                    side("rules", None, rule, f"pgd_{source}_accuracy"),
                    side("rules", None, "bp", f"pgd_{source}_accuracy"),
                    "positive",
                )
            )
    for rule in [r for r in plan.rules if r.startswith("ifa")]:
        rows.append(
            _two_groups(
                "C8",
                f"accuracy under corruptions (mean over corruptions × severities), {rule} − BP > 0",
                side("rules", None, rule, "corruption_accuracy"),
                side("rules", None, "bp", "corruption_accuracy"),
                "positive",
            )
        )
    if {"ifa", "fa"} <= set(plan.init_rules):
        grid = _grid_means(points["init"], "final_train_accuracy")
        sides = []
        for rule in ("ifa", "fa"):
            values = [grid[(rule, s)] for s in sorted({s for r, s in grid if r == rule})]
            sides.append(
                {
                    "mean": statistics.fmean(values) if values else None,
                    "std": statistics.stdev(values) if len(values) > 1 else None,
                    "n": len(values),
                    "values": values,
                    "label": f"{rule} (grid mean)",
                    "source": {
                        "sweep": "init",
                        "value": "mean over the gain grid, per seed",
                        "rule": rule,
                        "metric": "final_train_accuracy",
                    },
                }
            )
        rows.append(
            _two_groups(
                "C9",
                "final TRAIN accuracy averaged over the forward × backward gain grid, IFA − FA > 0",
                sides[0],
                sides[1],
                "positive",
            )
        )
    return sorted(rows, key=lambda r: int(r.claim_id[1:]))  # stable: keeps each claim's order


def _angle_rule_name(theta: float) -> str:
    return "ifa" if theta == 0 else f"ifa:{theta:g}"


def _resolved_values(summary: dict[str, Any]) -> list[Any]:
    return list(summary["spec"]["values"])


def _grid_means(points: list[dict[str, Any]], metric: str) -> dict[tuple[str, int], float]:
    """``(rule, seed) →`` mean of ``metric`` over that seed's grid cells (all cells finished)."""
    cells: dict[tuple[str, int], list[float]] = {}
    for (_, rule, seed), v in _point_metric(points, metric).items():
        cells.setdefault((rule, seed), []).append(v)
    return {key: statistics.fmean(v) for key, v in cells.items()}


# --------------------------------------------------------------------------- the report


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit.startswith("accuracy"):
        return f"{value:.3f}"
    return format_sig(value, 4)


def _signed(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    text = _num(abs(value), unit)
    return ("−" if value < 0 else "+") + text


def _stat_text(side: dict[str, Any], unit: str) -> str:
    text = _num(side["mean"], unit)
    if side["std"] is not None:
        text += f" ± {_num(side['std'], unit)}"
    return f"{side['label']} {text} (n={side['n']})"


def row_numbers(row: ClaimRow) -> str:
    """The "ours" cell of a claim row: the groups' mean ± std and the difference ± spread."""
    spread = "" if row.spread is None else f" ± {_num(row.spread, row.unit)}"
    if row.right is None:
        seeds = ", ".join(_signed(v, row.unit) for v in row.left["values"])
        return f"{row.left['label']} {_signed(row.difference, row.unit)}{spread} (seeds: {seeds})"
    return (
        f"{_stat_text(row.left, row.unit)} vs {_stat_text(row.right, row.unit)}; "
        f"d = {_signed(row.difference, row.unit)}{spread}"
    )


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def _sweep_table(summary: dict[str, Any], metrics: list[tuple[str, str]]) -> list[str]:
    parameter = summary["parameter"] or "config"
    header = [parameter, "rule", "seeds", "diverged"] + [title for _, title in metrics]
    body = []
    for g in summary["groups"]:
        value = g["value"]
        value_text = (
            f"fwd {value[0]:g} × bwd {value[1]:g}"
            if isinstance(value, list)
            else "base"
            if value is None
            else f"{value:g}"
        )
        cells = [value_text, g["rule"], str(len(g["seeds"])), str(g["diverged"])]
        for metric, _ in metrics:
            stat = g["metrics"].get(metric)
            unit = "accuracy" if "accuracy" in metric else "value"
            if not stat or stat["mean"] is None:
                cells.append("—")
            else:
                std = "" if stat["std"] is None else f" ± {_num(stat['std'], unit)}"
                cells.append(_num(stat["mean"], unit) + std)
        body.append(cells)
    return _table(header, body)


def _describe_base(plan: ReproducePlan) -> str:
    b = plan.base
    bits = "float" if not b.quantized else f"{b.weight_bits}-bit weights, {b.act_bits}-bit acts"
    return (
        f"dataset `{b.dataset}`, MLP depth {b.depth} width {b.width} ({bits}), "
        f"{b.optimizer} lr {b.lr:g}, batch {b.batch_size}, {b.epochs} epochs, "
        f"He forward init (gain {b.forward_gain:.3g}), seeds {', '.join(map(str, plan.seeds))}"
    )


SECTIONS: list[tuple[str, str, list[str], list[tuple[str, str]]]] = [
    (
        "rules",
        "Rule comparison (C1, C2, C5, C7, C8)",
        ["C1", "C2", "C5", "C7", "C8"],
        [
            ("final_test_accuracy", "test acc"),
            ("final_train_loss", "train loss"),
            ("final_alignment_deg_mean", "final W∠B (deg)"),
            ("hessian_trace", "Hessian trace"),
            ("top_eigenvalue", "top eig."),
            ("clean_accuracy", "clean acc"),
            ("corruption_accuracy", "corrupted acc"),
            ("pgd_true_accuracy", "PGD true"),
            ("pgd_feedback_accuracy", "PGD own feedback"),
            ("pgd_transfer_accuracy", "PGD transfer"),
            ("fgsm_true_accuracy", "FGSM true"),
        ],
    ),
    (
        "depth",
        "Depth (C3, paper Fig 3b)",
        ["C3"],
        [("final_test_accuracy", "test acc"), ("best_test_accuracy", "best test acc")],
    ),
    (
        "data",
        "Training-set size (C4, paper Fig 3c)",
        ["C4"],
        [("final_test_accuracy", "test acc"), ("final_train_accuracy", "train acc")],
    ),
    (
        "angle",
        "Initial angle (C6, paper Fig 4)",
        ["C6"],
        [
            ("final_test_accuracy", "test acc"),
            ("final_alignment_deg_mean", "final W∠B (deg)"),
            ("hessian_trace", "Hessian trace"),
            ("top_eigenvalue", "top eig."),
        ],
    ),
    (
        "init",
        "Init gains (C9, paper Fig 3a)",
        ["C9"],
        [("final_train_accuracy", "train acc"), ("final_test_accuracy", "test acc")],
    ),
]


def render_report(document: dict[str, Any]) -> str:
    """``REPRODUCTION.md`` from the ``reproduction.json`` document."""
    plan = document["plan"]
    rows = [ClaimRow(**r) for r in document["claims"]]
    summaries = document["sweeps"]
    counts = {v: sum(r.verdict == v for r in rows) for v in (AGREES, DISAGREES)}
    inconclusive = len(rows) - counts[AGREES] - counts[DISAGREES]
    timing = document["timing"]
    lines = [
        "# Reproduction of the paper's claims (initial feedback alignment)",
        "",
        f"Scale **{plan['scale']}**: {document['base_description']}. "
        f"Wall time of this invocation: {timing['wall_s'] / 60:.1f} min on "
        f"{timing['cpu_count']} CPUs with {timing['torch_threads']} torch thread(s), 1-min load "
        f"average {timing['load_average_1min']['start']:.1f} at the start and "
        f"{timing['load_average_1min']['end']:.1f} at the end; compute time of all points "
        f"(over every resumption): {timing['compute_s'] / 60:.1f} min. Generated by "
        "`hwsim reproduce`; numbers from `sweeps/<name>/sweep.json`, verdicts computed from them "
        "by the rule below (nothing here is written by hand).",
        "",
        f"**{counts[AGREES]} rows agree, {counts[DISAGREES]} do not agree, {inconclusive} are "
        f"inconclusive** (of {len(rows)}).",
        "",
        "## Verdict rule",
        "",
        VERDICT_RULE,
        f"The tolerance for 'close to BP' is tol = {plan['close_tolerance']:g} (test accuracy).",
        "",
        "## Claims",
        "",
    ]
    lines += _table(
        ["#", "claim (paper)", "rows", AGREES, DISAGREES, "inconclusive"],
        [
            [
                claim_id,
                claim,
                str(len(mine)),
                str(sum(r.verdict == AGREES for r in mine)),
                str(sum(r.verdict == DISAGREES for r in mine)),
                str(sum(r.verdict not in (AGREES, DISAGREES) for r in mine)),
            ]
            for claim_id, claim in CLAIMS.items()
            if (mine := [r for r in rows if r.claim_id == claim_id])
        ],
    )
    lines += ["", "Every measurement, one row each:", ""]
    lines += _table(
        ["#", "claim (paper)", "measurement", "ours (mean ± std over seeds)", "verdict"],
        [[r.claim_id, r.claim, r.measurement, row_numbers(r), f"**{r.verdict}**"] for r in rows],
    )
    for name, title, _, metrics in SECTIONS:
        summary = summaries.get(name)
        if summary is None:
            continue
        spec = summary["spec"]
        lines += ["", f"## {title}", ""]
        lines.append(
            f"Sweep `sweeps/{name}/` ({summary['points']} runs, compute "
            f"{summary['compute_s'] / 60:.1f} min): {_spec_text(spec)}."
        )
        for note in spec["notes"]:
            lines += ["", f"Note: {note}."]
        repeated = document.get("base_values", {}).get(name)
        if repeated:
            lines += [
                "",
                f"At {spec['parameter']} {', '.join(f'{v:g}' for v in repeated)} these runs train "
                "exactly the base configuration, so their numbers equal the rule comparison's; "
                "the claim rows cite them once (C1, C2).",
            ]
        if name == "init":
            lines += ["", _init_note(spec["base"])]
        lines += ["", f"![{name} sweep](sweeps/{name}/{summary['figure']})", ""]
        lines += _sweep_table(summary, [m for m in metrics if _has(summary, m[0])])
    lines += [
        "",
        "## How it was measured",
        "",
        "- Accuracies: the model after the last epoch on the held-out test split "
        "(`final_test_accuracy`); a diverged run counts with the accuracy of the weights it "
        "ended with. Train accuracy is on the training split, eval mode.",
        "- Curvature: Hessian of the mean training cross-entropy on the BP view of the final "
        f"weights (true gradients; ARCHITECTURE.md §2), first {plan['curvature']['samples']} "
        f"training samples, Hutchinson trace with {plan['curvature']['probes']} Rademacher "
        "probes, top eigenvalue by Lanczos (`hwsim analyze hessian`).",
        f"- Robustness: first {plan['robustness']['samples']} test samples; corruptions "
        "(Gaussian, shot, impulse noise, blur, contrast, brightness, pixelate; severities "
        f"{', '.join(map(str, plan['robustness']['severities']))}); FGSM and PGD "
        f"({plan['robustness']['pgd_steps']} steps) at ε ∈ "
        f"{{{', '.join(f'{e:g}' for e in plan['robustness']['eps'])}}}, each crafted three "
        "ways: white box through the true gradient (BP view), white box through the model's "
        "own feedback, and black box transferred from a BP surrogate (same config, seed + 1). "
        "Rows use the mean accuracy over the ε > 0 (`hwsim analyze robustness`).",
        "- What this does not test: the paper's exact networks, datasets and training budgets "
        "(only its abstract and figure captions are public to us); CNNs; quantized training. "
        "With 2–5 seeds the spread itself is uncertain.",
        "",
    ]
    return "\n".join(lines)


def _init_note(base: dict[str, Any]) -> str:
    optimizer = f"{base['optimizer']} lr {base['lr']:g}"
    if base["optimizer"] == "sgd":
        optimizer += f" momentum {base['momentum']:g}"
    return (
        f"The grid trains with {optimizer}: under Adam the backward gain only rescales every "
        "layer's error, which Adam's per-parameter normalization cancels (up to its ε and float "
        "rounding), so the grid is flat along that axis up to seed noise (measured with "
        "`hwsim sweep init`, Adam: the means over backward gains differ by less than the seed "
        "spread)."
    )


def _has(summary: dict[str, Any], metric: str) -> bool:
    return any(metric in g["metrics"] for g in summary["groups"])


def _spec_text(spec: dict[str, Any]) -> str:
    b = spec["base"]
    parts = []
    if spec["parameter"]:
        values = spec["values"]
        shown = (
            ", ".join(f"{v:g}" for v in sorted({v[0] for v in values}))
            if spec["kind"] == "init"
            else ", ".join(f"{v:g}" for v in values)
        )
        parts.append(f"{spec['parameter']} ∈ {{{shown}}}")
    parts.append(f"rules {', '.join(spec['rules'])}" if spec["kind"] != "angle" else "rule ifa:θ")
    parts.append(f"seeds {', '.join(map(str, spec['seeds']))}")
    parts.append(f"{b['epochs']} epochs")
    if spec["min_steps"]:
        parts.append(f"at least {spec['min_steps']} optimizer steps per run")
    return ", ".join(parts)


# --------------------------------------------------------------------------- running


def _check_out(out: Path, plan: ReproducePlan, force: bool) -> None:
    """Refuse a non-directory, or a directory holding another plan (unless ``force``)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    plan_path = out / PLAN_FILE
    if force or not plan_path.exists():
        return
    try:
        previous = json.loads(plan_path.read_text())
    except json.JSONDecodeError:
        previous = None
    if previous != jsonable(plan.to_dict()):
        raise InputError(
            f"{out} holds a reproduction with a different plan ({plan_path}); choose "
            "another --out, or pass --force to start over"
        )


def _prepare_out(out: Path, plan: ReproducePlan, force: bool) -> None:
    if force:
        shutil.rmtree(out / SWEEPS_DIR, ignore_errors=True)
        for name in (PLAN_FILE, "reproduction.json", "REPRODUCTION.md"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    plan_text = json.dumps(jsonable(plan.to_dict()), indent=1) + "\n"
    write_atomic(out / PLAN_FILE, plan_text.encode())


def run_reproduce(
    plan: ReproducePlan,
    out_dir: str | Path,
    *,
    force: bool = False,
    on_sweep: Callable[[str, SweepSpec], None] | None = None,
    on_point: Callable[[SweepPoint, int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Run every sweep of ``plan`` into ``OUT/sweeps/``, then write the reproduction report.

    Resumable: each sweep skips its finished points (Ctrl-C keeps them). A different plan in
    ``out_dir`` is an :class:`InputError` unless ``force``. ``on_sweep(name, spec)`` is called
    before each sweep, ``on_point`` as in :func:`hwsim.experiments.sweeps.run_sweep`. Writes
    ``reproduction.json`` and ``REPRODUCTION.md`` atomically and returns the JSON document.
    """
    import torch

    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    out = Path(out_dir)
    _check_out(out, plan, force)
    specs = plan.specs()  # validates everything before any work
    _prepare_out(out, plan, force)
    summaries: dict[str, dict[str, Any]] = {}
    points: dict[str, list[dict[str, Any]]] = {}
    wall: dict[str, float] = {}
    for name, spec in specs.items():
        if on_sweep:
            on_sweep(name, spec)
        sweep_started = time.perf_counter()
        summaries[name] = run_sweep(spec, out / SWEEPS_DIR / name, on_point=on_point)
        points[name] = read_points(out / SWEEPS_DIR / name)
        wall[name] = time.perf_counter() - sweep_started
    rows = evaluate_claims(plan, specs, summaries, points)
    document = jsonable(
        {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "plan": plan.to_dict(),
            "base_description": _describe_base(plan),
            "verdict_rule": VERDICT_RULE,
            "claims": [r.to_dict() for r in rows],
            "base_values": {name: _base_values(plan, specs[name]) for name in ("depth", "data")},
            "sweeps": summaries,
            "timing": {
                "wall_s": time.perf_counter() - started,
                "torch_threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
                "load_average_1min": {"start": load_at_start, "end": os.getloadavg()[0]},
                "compute_s": sum(s["compute_s"] for s in summaries.values()),
                "sweeps": {
                    name: {"wall_s": wall[name], "compute_s": summaries[name]["compute_s"]}
                    for name in specs
                },
            },
        }
    )
    markdown = render_report(document)
    write_atomic(out / "reproduction.json", (json.dumps(document, indent=1) + "\n").encode())
    write_atomic(out / "REPRODUCTION.md", markdown.encode())
    return document
