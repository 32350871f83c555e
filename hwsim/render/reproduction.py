"""``REPRODUCTION.md`` and the sweeps' figures, drawn from ``reproduction.json`` alone.

:func:`hwsim.experiments.reproduce.run_reproduce` computes the claim rows and saves them, with
the plan, the verdict rule and every sweep's aggregates, in ``OUT/reproduction.json``
(docs/reproduce.md). This module only reads that document: :func:`render_report` turns it into
Markdown, :func:`write_reproduction` writes ``OUT/REPRODUCTION.md`` and every
``OUT/sweeps/<name>/<kind>.png``, so the report can be redrawn without the run directories or the
learning side. Every "mean ± std" is as saved: the sample standard deviation (n − 1) over seeds,
none with one seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.files import read_json, write_atomic
from hwsim.core.outputs import REPRODUCTION_FILE, REPRODUCTION_MARKDOWN, REPRODUCTION_SWEEPS_DIR
from hwsim.core.units import FLOAT_BITS, MISSING, format_number, format_sig

__all__ = [
    "DOCUMENT_FILE",
    "MARKDOWN_FILE",
    "SECTIONS",
    "render_report",
    "row_numbers",
    "write_report",
    "write_reproduction",
]

#: The saved reproduction (the one input here) and the report drawn from it, in ``OUT``.
DOCUMENT_FILE = REPRODUCTION_FILE
MARKDOWN_FILE = REPRODUCTION_MARKDOWN
SWEEPS_DIR = REPRODUCTION_SWEEPS_DIR
#: Keys of ``reproduction.json`` the report reads.
_REQUIRED = ("plan", "verdict_rule", "verdicts", "claims", "base_values", "sweeps", "timing")


# --------------------------------------------------------------------------- numbers


def _num(value: float | None, unit: str) -> str:
    """An accuracy with 3 decimals, anything else with 4 significant digits, ``—`` for None."""
    if unit.startswith("accuracy"):
        return format_number(value, ".3f")
    return MISSING if value is None else format_sig(value, 4)


def _mean_std_text(mean: float | None, std: float | None, unit: str) -> str:
    """``mean ± std`` in the unit's format; just the mean with one seed, ``—`` without data."""
    if mean is None:
        return MISSING
    return _num(mean, unit) + ("" if std is None else f" ± {_num(std, unit)}")


def _signed(value: float | None, unit: str) -> str:
    if value is None:
        return MISSING
    text = _num(abs(value), unit)
    return ("−" if value < 0 else "+") + text


def _stat_text(side: dict[str, Any], unit: str) -> str:
    text = _mean_std_text(side["mean"], side["std"], unit)
    return f"{side['label']} {text} (n={side['n']})"


def row_numbers(row: dict[str, Any]) -> str:
    """The "ours" cell of a claim row (one entry of ``claims`` in ``reproduction.json``).

    Two groups: each group's mean ± std (n) and the difference d ± its spread; a per-seed
    statistic: its mean ± std and the value of each seed.
    """
    unit = row["unit"]
    spread = "" if row["spread"] is None else f" ± {_num(row['spread'], unit)}"
    left, right = row["left"], row["right"]
    if right is None:
        seeds = ", ".join(_signed(v, unit) for v in left["values"])
        return f"{left['label']} {_signed(row['difference'], unit)}{spread} (seeds: {seeds})"
    return (
        f"{_stat_text(left, unit)} vs {_stat_text(right, unit)}; "
        f"d = {_signed(row['difference'], unit)}{spread}"
    )


# --------------------------------------------------------------------------- markdown pieces


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: Sequence[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return f"fwd {value[0]:g} × bwd {value[1]:g}"
    return "base" if value is None else f"{value:g}"


def _sweep_table(summary: dict[str, Any], metrics: list[tuple[str, str]]) -> list[str]:
    parameter = summary["parameter"] or "config"
    header = [parameter, "rule", "seeds", "diverged"] + [title for _, title in metrics]
    body = []
    for g in summary["groups"]:
        cells = [_value_text(g["value"]), g["rule"], str(len(g["seeds"])), str(g["diverged"])]
        for metric, _ in metrics:
            stat = g["metrics"].get(metric) or {}
            unit = "accuracy" if "accuracy" in metric else "value"
            cells.append(_mean_std_text(stat.get("mean"), stat.get("std"), unit))
        body.append(cells)
    return _table(header, body)


def _describe_base(plan: dict[str, Any]) -> str:
    """One line on the base network and data of a plan (``plan`` in ``reproduction.json``)."""
    b = plan["base"]
    quantized = b["weight_bits"] != FLOAT_BITS or b["act_bits"] != FLOAT_BITS
    bits = f"{b['weight_bits']}-bit weights, {b['act_bits']}-bit acts" if quantized else "float"
    return (
        f"dataset `{b['dataset']}`, MLP depth {b['depth']} width {b['width']} ({bits}), "
        f"{b['optimizer']} lr {b['lr']:g}, batch {b['batch_size']}, {b['epochs']} epochs, "
        f"He forward init (gain {b['forward_gain']:.3g}), "
        f"seeds {', '.join(map(str, plan['seeds']))}"
    )


#: One section per sweep: name, title, the claims it tests, and the metrics of its table.
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
    (
        "algorithms",
        "Various learning algorithms (C10, paper Fig 1e; IFA from the rule comparison)",
        ["C10"],
        [
            ("final_test_accuracy", "test acc"),
            ("final_train_loss", "train loss"),
            ("final_alignment_deg_mean", "final W∠B (deg)"),
        ],
    ),
]


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


def _equal_loss_text(level: float | None) -> str:
    if level is None:
        return ""
    return (
        " C5 is judged twice: at the end of training, where the rules' training losses differ "
        f"(curvature falls with the loss), and at equal training loss ≤ {level:g} (each run at "
        "the first epoch that reaches it; `hwsim analyze hessian --at-loss`)."
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


def _claims(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Claim id → claim text, in the order the rows cite them (rows are sorted by claim)."""
    return {r["claim_id"]: r["claim"] for r in rows}


# --------------------------------------------------------------------------- the report


def _equal_loss_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The C5 rows measured at equal training loss (none in documents from before them)."""
    return [
        r for r in rows if r["claim_id"] == "C5" and r["right"] is not None and "runs" in r["left"]
    ]


def _equal_loss_section(rows: list[dict[str, Any]]) -> list[str]:
    """Where each run's equal-loss curvature was measured (epoch, training loss) or why not
    (``never reached (lowest loss X at epoch E)``), from the C5 equal-loss rows."""
    found = _equal_loss_rows(rows)
    if not found:
        return []
    level = found[0]["left"]["source"].get("at_loss")
    by_run: dict[tuple[str, int], dict[str, Any]] = {}
    units = []
    for row in found:
        units.append(row["unit"])
        for side in (row["left"], row["right"]):
            for run in side["runs"]:
                entry = by_run.setdefault((side["label"], run["seed"]), dict(run))
                entry[row["unit"]] = run["value"]
    if level is None:
        intro = "Not measured: the plan sets no training-loss level."
    else:
        intro = (
            f"Curvature at equal training loss: each run measured at the first epoch whose "
            f"training loss (whole training split, eval mode) is at most {level:g}, from that "
            "epoch's weight snapshot (or the final weights). A run that never gets there is in "
            "neither group's numbers."
        )
    body = []
    for (rule, seed), run in by_run.items():
        measured = run["status"] == "measured"
        body.append(
            [
                rule,
                str(seed),
                str(run["epoch"]) if measured else MISSING,
                _num(run["train_loss"], "value") if measured else MISSING,
                *(_num(run.get(unit), "value") if measured else MISSING for unit in units),
                "measured" if measured else str(run.get("note") or run["status"]),
            ]
        )
    header = ["rule", "seed", "epoch", "training loss there", *units, "status"]
    return ["", intro, "", *_table(header, body)]


def _check_document(document: Any, where: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise InputError(f"{where}: not a JSON object; expected a reproduction.json")
    missing = [key for key in _REQUIRED if key not in document]
    if missing:
        raise InputError(
            f"{where}: no {', '.join(missing)}; expected a reproduction.json written by "
            "`hwsim reproduce` (running the same command again rewrites it without training)"
        )
    return document


def render_report(document: dict[str, Any]) -> str:
    """``REPRODUCTION.md`` from the ``reproduction.json`` document (nothing else is read).

    The verdict names come from the document (``verdicts``), as do the rule, the numbers and the
    plan; the same document gives the same text.
    """
    document = _check_document(document, "reproduction document")
    plan = document["plan"]
    rows = document["claims"]
    summaries = document["sweeps"]
    agrees, disagrees = document["verdicts"]["agrees"], document["verdicts"]["disagrees"]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in (agrees, disagrees)}
    inconclusive = len(rows) - counts[agrees] - counts[disagrees]
    timing = document["timing"]
    lines = [
        "# Reproduction of the paper's claims (initial feedback alignment)",
        "",
        f"Scale **{plan['scale']}**: {_describe_base(plan)}. "
        f"Wall time of this invocation: {timing['wall_s'] / 60:.1f} min on "
        f"{timing['cpu_count']} CPUs with {timing['torch_threads']} torch thread(s), 1-min load "
        f"average {timing['load_average_1min']['start']:.1f} at the start and "
        f"{timing['load_average_1min']['end']:.1f} at the end; compute time of all points "
        f"(over every resumption): {timing['compute_s'] / 60:.1f} min. Generated by "
        "`hwsim reproduce`; numbers from `sweeps/<name>/sweep.json`, verdicts computed from them "
        "by the rule below (nothing here is written by hand).",
        "",
        f"**{counts[agrees]} rows agree, {counts[disagrees]} do not agree, {inconclusive} are "
        f"inconclusive** (of {len(rows)}).",
        "",
        "## Verdict rule",
        "",
        document["verdict_rule"],
        f"The tolerance for 'close to BP' is tol = {plan['close_tolerance']:g} (test accuracy).",
        "",
        "## Claims",
        "",
    ]
    lines += _table(
        ["#", "claim (paper)", "rows", agrees, disagrees, "inconclusive"],
        [
            [
                claim_id,
                claim,
                str(len(mine)),
                str(sum(r["verdict"] == agrees for r in mine)),
                str(sum(r["verdict"] == disagrees for r in mine)),
                str(sum(r["verdict"] not in (agrees, disagrees) for r in mine)),
            ]
            for claim_id, claim in _claims(rows).items()
            if (mine := [r for r in rows if r["claim_id"] == claim_id])
        ],
    )
    lines += ["", "Every measurement, one row each:", ""]
    lines += _table(
        ["#", "claim (paper)", "measurement", "ours (mean ± std over seeds)", "verdict"],
        [
            [r["claim_id"], r["claim"], r["measurement"], row_numbers(r), f"**{r['verdict']}**"]
            for r in rows
        ],
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
        repeated = document["base_values"].get(name)
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
        if name == "rules":
            lines += _equal_loss_section(rows)
    lines += [
        "",
        "## How it was measured",
        "",
        "- Accuracies: the model after the last epoch on the held-out test split "
        "(`final_test_accuracy`); a diverged run counts with the accuracy of the weights it "
        "ended with. Train accuracy is on the training split, eval mode.",
        "- Curvature: Hessian of the mean training cross-entropy on the BP view of the final "
        "weights (the same forward weights differentiated by ordinary backpropagation, so the "
        f"true gradients, not the feedback path), first {plan['curvature']['samples']} "
        f"training samples, Hutchinson trace with {plan['curvature']['probes']} Rademacher "
        "probes, top eigenvalue by Lanczos (`hwsim analyze hessian`)."
        + _equal_loss_text(plan["curvature"].get("at_loss")),
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


def _read_document(out: Path) -> dict[str, Any]:
    path = out / DOCUMENT_FILE
    document = read_json(path, "the reproduction.json of `hwsim reproduce`")
    return _check_document(document, str(path))


def write_report(out_dir: str | Path) -> Path:
    """Write ``OUT/REPRODUCTION.md`` from ``OUT/reproduction.json`` (atomically); its path."""
    out = Path(out_dir)
    target = out / MARKDOWN_FILE
    write_atomic(target, render_report(_read_document(out)))
    return target


def write_reproduction(out_dir: str | Path) -> list[Path]:
    """Every sweep's figure (``OUT/sweeps/<name>/<kind>.png``) and ``OUT/REPRODUCTION.md``.

    All of it from ``OUT/reproduction.json`` alone (it holds each sweep's aggregates). Returns
    the paths written, the report last. A missing or incomplete document is an
    :class:`InputError` naming it.
    """
    from hwsim.render.sweeps import write_sweep_figure  # matplotlib only when figures are drawn

    out = Path(out_dir)
    document = _read_document(out)
    written = [
        write_sweep_figure(out / SWEEPS_DIR / name, summary)
        for name, summary in document["sweeps"].items()
    ]
    target = out / MARKDOWN_FILE
    write_atomic(target, render_report(document))
    return [*written, target]
