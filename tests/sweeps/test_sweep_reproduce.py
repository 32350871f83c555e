"""`reproduce` on a tiny test-only plan: claim rows equal the sweeps' numbers; verdict rule;
the report and figures are drawn from reproduction.json alone."""

import dataclasses
import json
import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.experiments.reproduce import (
    AGREES,
    DISAGREES,
    NO_DATA,
    NO_SPREAD,
    OVERLAP,
    ClaimRow,
    ReproducePlan,
    run_reproduce,
    verdict,
)
from hwsim.experiments.sweeps import CurvatureSettings, RobustnessSettings
from hwsim.models.config import TrainConfig
from hwsim.models.training import torch_threads
from hwsim.render.reproduction import render_report, row_numbers, write_reproduction

TINY_PLAN = ReproducePlan(
    scale="test",
    base=TrainConfig(
        dataset="digits", depth=2, width=16, epochs=2, lr=0.01, train_size=300, snapshots=False
    ),
    seeds=(0, 1),
    rules=("bp", "fa", "ifa", "ifa:45"),
    algorithms=("dfa", "kp"),
    angles=(0.0, 90.0),
    depths=(2, 3),
    depth_rules=("fa", "ifa"),
    sizes=(100, 300),
    data_rules=("fa", "ifa"),
    gains=(1.0,),
    init_optimizer="adam",
    init_lr=0.01,
    # 2.07: between the epoch-1 training losses (2.066–2.097 over the rules and seeds), so some
    # runs reach it at epoch 1 (a snapshot) and others only at the end.
    curvature=CurvatureSettings(samples=200, batch_size=200, probes=5, top_k=1, at_loss=2.07),
    robustness=RobustnessSettings(
        samples=100, eps=(0.0, 0.1), attacks=("pgd",), pgd_steps=3, severities=(1, 3)
    ),
)


# --------------------------------------------------------------------------- the verdict rule


@pytest.mark.parametrize(
    ("difference", "spread", "region", "expected"),
    [
        (0.20, 0.05, "positive", AGREES),  # [0.15, 0.25] inside d > 0
        (0.04, 0.05, "positive", OVERLAP),  # [-0.01, 0.09] straddles 0
        (-0.20, 0.05, "positive", DISAGREES),  # [-0.25, -0.15] outside
        (0.05, 0.05, "positive", OVERLAP),  # touching 0 is not inside
        (-0.05, 0.05, "positive", DISAGREES),  # [-0.1, 0]: d ≤ 0 throughout
        (0.20, 0.0, "positive", AGREES),  # identical seeds: no spread at all
        (-3.0, 1.0, "negative", AGREES),
        (3.0, 1.0, "negative", DISAGREES),
        (0.5, 1.0, "negative", OVERLAP),
        (0.2, 0.05, "positive", AGREES),
        (0.2, None, "positive", NO_SPREAD),  # one seed
        (None, None, "positive", NO_DATA),
        (math.nan, 0.1, "positive", NO_DATA),
    ],
)
def test_verdict_ordering_claims(difference, spread, region, expected):
    assert verdict(difference, spread, region=region) == expected


@pytest.mark.parametrize(
    ("difference", "spread", "expected"),
    [
        (-0.005, 0.01, AGREES),  # [-0.015, 0.005] inside ±0.02
        (0.01, 0.01, AGREES),  # [0, 0.02]: the edge counts as inside
        (-0.015, 0.01, OVERLAP),  # [-0.025, -0.005]
        (-0.05, 0.01, DISAGREES),  # [-0.06, -0.04] entirely below -0.02
        (0.05, 0.02, DISAGREES),
        (0.0, 0.03, OVERLAP),  # wider than the tolerance band: can't tell
    ],
)
def test_verdict_closeness_claims(difference, spread, expected):
    assert verdict(difference, spread, region="within", tolerance=0.02) == expected


def test_verdict_rejects_unknown_region():
    with pytest.raises(ValueError, match="region"):
        verdict(0.1, 0.1, region="bigger")


# --------------------------------------------------------------------------- a tiny reproduction


#: Each sweep of the plan and the figure the renderer draws for it (``<kind>.png``).
FIGURES = {name: f"{name}.png" for name in ("rules", "angle", "depth", "data", "init")}
FIGURES["algorithms"] = "rules.png"  # a rules sweep by another name


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory) -> tuple[Path, dict]:
    """`hwsim reproduce` (one torch thread, the default) with its plan swapped for the tiny one."""
    import hwsim.experiments.reproduce

    out = tmp_path_factory.mktemp("reproduce") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hwsim.experiments.reproduce, "plan_for", lambda scale, **_: TINY_PLAN)
        result = CliRunner().invoke(main, ["reproduce", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "claim rows, wall" in result.output and "REPRODUCTION.md" in result.output
    return out, json.loads((out / "reproduction.json").read_text())


def _sweep(out: Path, name: str) -> dict:
    return json.loads((out / "sweeps" / name / "sweep.json").read_text())


def _points(out: Path, name: str) -> list[dict]:
    text = (out / "sweeps" / name / "points.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_writes_report_json_and_every_sweep(reproduction):
    out, document = reproduction
    assert (out / "REPRODUCTION.md").read_text().startswith("# Reproduction")
    for name, figure in FIGURES.items():
        summary = _sweep(out, name)
        assert summary["complete"], name
        assert document["sweeps"][name] == summary
        assert summary["figure"] == figure
        assert (out / "sweeps" / name / figure).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    ids = [r["claim_id"] for r in document["claims"]]
    assert sorted(set(ids), key=lambda c: int(c[1:])) == [f"C{i}" for i in range(1, 11)]


def test_cli_table_shows_every_claim_row(reproduction):
    """The command's table: each row's numbers as the report's renderer writes them."""
    import hwsim.cli.reproduce

    _, document = reproduction
    table = hwsim.cli.reproduce._claims_table(document)
    cells = [list(column.cells) for column in table.columns]
    assert cells[0] == [r["claim_id"] for r in document["claims"]]
    assert cells[2] == [row_numbers(r) for r in document["claims"]]
    assert cells[3] == [r["verdict"] for r in document["claims"]]


def test_report_and_figures_redrawn_from_reproduction_json_alone(reproduction, tmp_path):
    """A directory holding nothing but reproduction.json gives the very same REPRODUCTION.md and
    the same figure bytes as the command wrote."""
    out, document = reproduction
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "reproduction.json", alone / "reproduction.json")
    written = write_reproduction(alone)
    assert written[-1] == alone / "REPRODUCTION.md"
    assert (alone / "REPRODUCTION.md").read_text() == (out / "REPRODUCTION.md").read_text()
    assert render_report(document) == (out / "REPRODUCTION.md").read_text()
    for name, figure in FIGURES.items():
        path = alone / "sweeps" / name / figure
        assert path in written
        assert path.read_bytes() == (out / "sweeps" / name / figure).read_bytes(), name
    assert sorted(p.name for p in (alone / "sweeps").iterdir()) == sorted(FIGURES)


def test_report_numbers_come_from_the_document(reproduction):
    """Change one claim row's numbers in the document: the report shows the new ones."""
    _, document = reproduction
    changed = json.loads(json.dumps(document))
    row = next(r for r in changed["claims"] if r["right"] is not None and r["unit"] == "accuracy")
    row["left"]["mean"], row["left"]["std"], row["left"]["n"] = 0.123456, 0.0404, 7
    row["difference"], row["spread"] = -0.5, 0.25
    markdown = render_report(changed)
    assert f"{row['left']['label']} 0.123 ± 0.040 (n=7) vs " in markdown
    assert "d = −0.500 ± 0.250" in markdown
    assert markdown != render_report(document)


def test_report_refuses_a_document_without_its_keys(tmp_path):
    (tmp_path / "reproduction.json").write_text(json.dumps({"format": "hwsim-reproduction"}))
    with pytest.raises(InputError, match=r"reproduction\.json: no plan"):
        write_reproduction(tmp_path)
    with pytest.raises(InputError, match="missing"):
        write_reproduction(tmp_path / "nowhere")


def test_two_group_rows_equal_the_sweep_json(reproduction):
    out, document = reproduction
    checked = 0
    for raw in document["claims"]:
        row = ClaimRow(**raw)
        if row.right is None:
            continue
        if "at_loss" in row.left["source"]:
            continue  # per-run values from points.jsonl: test_equal_loss_rows_recomputed...
        for side in (row.left, row.right):
            source = side["source"]
            if source["sweep"] == "init":
                continue  # grid means per seed: checked in test_init_row_is_the_grid_mean
            group = next(
                g
                for g in _sweep(out, source["sweep"])["groups"]
                if g["value"] == source["value"] and g["rule"] == source["rule"]
            )
            stat = group["metrics"][source["metric"]]
            assert {k: side[k] for k in ("mean", "std", "n", "values")} == stat
        assert row.difference == row.left["mean"] - row.right["mean"]
        assert row.spread == row.left["std"] + row.right["std"]
        checked += 1
    # C1, C2, C3 at depth 3, C4 at 100 samples (depth 2 and 300 samples are the base config,
    # cited once by C1/C2), C5 at the end (2), C6 endpoints, C7 (ifa:45 × 2 sources), C8 (ifa,
    # ifa:45), C9, C10 (IFA − dfa, IFA − kp)
    assert checked == 14
    assert document["base_values"] == {"depth": [2], "data": [300]}
    measurements = [r["measurement"] for r in document["claims"]]
    assert not any("depth 2," in m or "samples 300," in m for m in measurements)


def test_per_seed_rows_recomputed_from_points(reproduction):
    out, document = reproduction
    rows = [ClaimRow(**r) for r in document["claims"] if r["right"] is None]
    slope = next(r for r in rows if r.claim_id == "C6")
    angle_points = _points(out, "angle")
    expected = []
    for seed in (0, 1):
        mine = [p for p in angle_points if p["seed"] == seed]
        fit = np.polyfit(
            [p["value"] for p in mine], [p["metrics"]["final_test_accuracy"] for p in mine], 1
        )
        expected.append(90 * fit[0])
    assert slope.left["values"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert slope.difference == statistics.fmean(slope.left["values"])

    depth = next(r for r in rows if r.claim_id == "C3")
    acc = {
        (p["value"], p["rule"], p["seed"]): p["metrics"]["final_test_accuracy"]
        for p in _points(out, "depth")
    }
    assert depth.left["values"] == [
        (acc[3, "ifa", s] - acc[3, "fa", s]) - (acc[2, "ifa", s] - acc[2, "fa", s]) for s in (0, 1)
    ]
    data = next(r for r in rows if r.claim_id == "C4")
    acc = {
        (p["value"], p["rule"], p["seed"]): p["metrics"]["final_test_accuracy"]
        for p in _points(out, "data")
    }
    assert data.left["values"] == [
        (acc[100, "ifa", s] - acc[100, "fa", s]) - (acc[300, "ifa", s] - acc[300, "fa", s])
        for s in (0, 1)
    ]
    for row in rows:
        assert row.spread == statistics.stdev(row.left["values"])


def test_init_row_is_the_grid_mean(reproduction):
    out, document = reproduction
    row = next(ClaimRow(**r) for r in document["claims"] if r["claim_id"] == "C9")
    points = _points(out, "init")
    for side, rule in ((row.left, "ifa"), (row.right, "fa")):
        assert side["values"] == [
            statistics.fmean(
                p["metrics"]["final_train_accuracy"]
                for p in points
                if p["rule"] == rule and p["seed"] == s
            )
            for s in (0, 1)
        ]


def test_every_verdict_follows_the_rule_and_the_markdown_shows_it(reproduction):
    out, document = reproduction
    markdown = (out / "REPRODUCTION.md").read_text()
    assert "## Verdict rule" in markdown
    assert document["verdict_rule"] in markdown
    for raw in document["claims"]:
        row = ClaimRow(**raw)
        assert row.verdict == verdict(
            row.difference, row.spread, region=row.region, tolerance=row.tolerance
        )
        line = f"| {row.claim_id} | {row.claim} | {row.measurement} | {row_numbers(raw)} |"
        assert line + f" **{row.verdict}** |" in markdown
    counts = f"**{sum(r['verdict'] == AGREES for r in document['claims'])} rows agree"
    assert counts in markdown


def test_rule_comparison_rows_use_robustness_and_curvature(reproduction):
    out, _ = reproduction
    fa = next(p for p in _points(out, "rules") if p["rule"] == "fa" and p["seed"] == 0)
    analysis = out / "sweeps" / "rules" / fa["run_dir"] / "analysis"
    robustness = json.loads((analysis / "robustness.json").read_text())
    pgd = robustness["adversarial_accuracy"]["pgd"]
    # ε list (0, 0.1): a row's number is the accuracy at the one ε > 0
    assert fa["metrics"]["pgd_true_accuracy"] == pgd["true"][1]
    assert fa["metrics"]["pgd_feedback_accuracy"] == pgd["feedback"][1]
    assert fa["metrics"]["pgd_transfer_accuracy"] == pgd["transfer"][1]
    assert fa["metrics"]["corruption_accuracy"] == robustness["mean_corruption_accuracy"]
    assert robustness["surrogate"]["dir"].endswith("surrogates/bp-seed1")
    hessian = json.loads((analysis / "hessian.json").read_text())
    assert fa["metrics"]["hessian_trace"] == hessian["trace"]
    assert fa["metrics"]["top_eigenvalue"] == hessian["top_eigenvalues"][0]


def test_different_plan_in_same_dir_is_an_input_error(reproduction, tmp_path):
    out, _ = reproduction
    before = (out / "plan.json").read_text()
    with pytest.raises(InputError, match=r"different plan\.json"):
        run_reproduce(dataclasses.replace(TINY_PLAN, seeds=(0,)), out)
    result = CliRunner().invoke(main, ["reproduce", "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "different plan.json" in result.output
    assert (out / "plan.json").read_text() == before


def test_output_without_a_plan_is_refused(tmp_path):
    out = tmp_path / "out"
    (out / "sweeps").mkdir(parents=True)
    with pytest.raises(InputError, match=r"is not empty and is not a reproduction hwsim wrote"):
        run_reproduce(TINY_PLAN, out)
    assert not (out / "plan.json").exists()


def test_api_writes_data_only_and_resumes_without_training(reproduction, monkeypatch, tmp_path):
    """run_reproduce on a finished copy: no training, the same claims, and only data written
    (plan.json, sweeps, reproduction.json); the report and figures are the renderer's."""
    import hwsim.experiments.sweeps

    out, document = reproduction
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "REPRODUCTION.md").unlink()
    for name, figure in FIGURES.items():
        (copy / "sweeps" / name / figure).unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(hwsim.experiments.sweeps, "train", no_training)
    with torch_threads(1):
        again = run_reproduce(TINY_PLAN, copy)
    assert again["claims"] == document["claims"]
    assert json.loads((copy / "reproduction.json").read_text()) == again
    assert sorted(p.name for p in copy.iterdir()) == [
        ".hwsim-manifest",
        "plan.json",
        "reproduction.json",
        "sweeps",
    ]
    assert not list(copy.glob("sweeps/*/*.png"))
    write_reproduction(copy)
    assert (copy / "REPRODUCTION.md").read_text() == render_report(again)
    for name, figure in FIGURES.items():  # the same aggregates: the same figures
        assert (copy / "sweeps" / name / figure).read_bytes() == (
            out / "sweeps" / name / figure
        ).read_bytes()


def test_algorithm_rows_compare_ifa_with_each_other_rule(reproduction):
    out, document = reproduction
    rows = [ClaimRow(**r) for r in document["claims"] if r["claim_id"] == "C10"]
    assert [r.measurement for r in rows] == [
        "final test accuracy, IFA − dfa > 0",
        "final test accuracy, IFA − kp > 0",
    ]
    for row, rule in zip(rows, ("dfa", "kp"), strict=True):
        assert row.left["source"] == {
            "sweep": "rules",
            "value": None,
            "rule": "ifa",
            "metric": "final_test_accuracy",
        }
        assert row.right["source"]["sweep"] == "algorithms"
        assert row.right["source"]["rule"] == rule
        assert row.verdict == verdict(row.difference, row.spread, region="positive")
    # the algorithms sweep trains the base config at the base seeds: only the rules differ
    spec = _sweep(out, "algorithms")["spec"]
    assert spec["rules"] == ["dfa", "kp"] and spec["seeds"] == [0, 1]
    markdown = (out / "REPRODUCTION.md").read_text()
    assert "## Various learning algorithms (C10, paper Fig 1e" in markdown


# --------------------------------------------------------------------------- C5 at equal loss


def _first_at_or_below(losses: list, level: float) -> int | None:
    return next((e for e, v in enumerate(losses) if v is not None and v <= level), None)


def test_flatness_is_judged_at_the_end_and_at_equal_loss(reproduction):
    out, document = reproduction
    c5 = [ClaimRow(**r) for r in document["claims"] if r["claim_id"] == "C5"]
    assert [r.measurement.split(" (")[0] for r in c5] == [
        "Hessian trace at the end of training",
        "top eigenvalue at the end of training",
        "Hessian trace at equal training loss",
        "top eigenvalue at equal training loss",
    ]
    assert "first epoch with training loss ≤ 2.07" in c5[2].measurement
    points = {(p["rule"], p["seed"]): p for p in _points(out, "rules")}
    epochs_seen = set()
    for row, key in ((c5[2], "trace"), (c5[3], "top_eigenvalues")):
        for side in (row.left, row.right):
            values = []
            for run in side["runs"]:
                point = points[(side["label"], run["seed"])]
                # The epoch: the first whose recorded training loss is at most the level.
                epoch = _first_at_or_below(point["curves"]["train_loss"], 2.07)
                assert run["epoch"] == epoch and run["status"] == "measured"
                assert run["train_loss"] == point["curves"]["train_loss"][epoch]
                epochs_seen.add(epoch)
                # The value: the hessian.json of that run, measured at that epoch's weights.
                hessian = json.loads(
                    (
                        out / "sweeps" / "rules" / point["run_dir"] / "analysis" / "hessian.json"
                    ).read_text()
                )
                measured = hessian["at_loss"]["curvature"][key]
                assert run["value"] == (measured if key == "trace" else measured[0])
                values.append(run["value"])
            assert side["values"] == values and side["n"] == len(values)
            assert side["mean"] == statistics.fmean(values)
        assert row.difference == row.left["mean"] - row.right["mean"]
        assert row.spread == row.left["std"] + row.right["std"]
        assert row.verdict == verdict(row.difference, row.spread, region="negative")
    assert epochs_seen == {1, 2}  # snapshots (epoch 1) and final weights (epoch 2) both used
    spec = _sweep(out, "rules")["spec"]
    assert spec["base"]["snapshots"] is True and spec["curvature"]["at_loss"] == 2.07
    assert any("snapshots kept" in note for note in spec["notes"])
    markdown = (out / "REPRODUCTION.md").read_text()
    assert "Curvature at equal training loss: each run measured at the first epoch" in markdown
    assert "| rule | seed | epoch | training loss there | Hessian trace | top eigenvalue |" in (
        markdown
    )


def test_a_run_that_never_reaches_the_level_is_reported_not_dropped_silently(reproduction):
    from hwsim.experiments.reproduce import evaluate_claims

    out, document = reproduction
    points = {name: _points(out, name) for name in document["sweeps"]}
    ifa = next(p for p in points["rules"] if p["rule"] == "ifa" and p["seed"] == 1)
    lowest = min(ifa["curves"]["train_loss"])
    ifa["curvature"]["at_loss"].update(
        status="never reached",
        reached=False,
        epoch=None,
        train_loss=None,
        trace=None,
        top_eigenvalues=None,
        note=f"never reached (lowest loss {lowest:.4g} at epoch 2)",
    )
    specs = TINY_PLAN.specs()
    rows = evaluate_claims(TINY_PLAN, specs, document["sweeps"], points)
    trace_row = next(r for r in rows if r.claim_id == "C5" and "equal" in r.measurement)
    assert trace_row.left["n"] == 1 and trace_row.left["label"] == "ifa"
    assert trace_row.verdict == NO_SPREAD  # one seed left: no spread, no verdict
    changed = {**document, "claims": [r.to_dict() for r in rows]}
    markdown = render_report(changed)
    assert f"| ifa | 1 | — | — | — | — | never reached (lowest loss {lowest:.4g} at epoch 2) |" in (
        markdown
    )


def test_old_documents_without_equal_loss_rows_still_render(reproduction):
    _, document = reproduction
    old = json.loads(json.dumps(document))
    old["claims"] = [r for r in old["claims"] if "runs" not in r["left"]]
    old["plan"]["curvature"].pop("at_loss")
    for summary in old["sweeps"].values():
        if summary["spec"]["curvature"]:
            summary["spec"]["curvature"].pop("at_loss", None)
    markdown = render_report(old)
    assert "equal training loss" not in markdown and "## Claims" in markdown


def test_a_plan_without_a_level_says_equal_loss_was_not_measured(reproduction):
    from hwsim.experiments.reproduce import evaluate_claims

    out, document = reproduction
    points = {name: _points(out, name) for name in document["sweeps"]}
    plan = dataclasses.replace(
        TINY_PLAN, curvature=dataclasses.replace(TINY_PLAN.curvature, at_loss=None)
    )
    rows = evaluate_claims(plan, TINY_PLAN.specs(), document["sweeps"], points)
    equal = [r for r in rows if r.claim_id == "C5" and "equal" in r.measurement]
    assert len(equal) == 2 and all(r.verdict == NO_DATA for r in equal)
    assert all("the plan sets no loss level" in r.measurement for r in equal)
