"""The tables of ``hwsim simulate`` and ``hwsim sweep`` fit an 80-column terminal without
cutting a cell to ``…``, use compare's units, and never show a spread that was not measured."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from rich.console import Console

from hwsim.cli import main
from hwsim.cli.simulate import simulate_table
from hwsim.cli.sweep import fmt_stat, sweep_table
from hwsim.sim import simulate
from hwsim.sim.chip import load_chip

TOY = Path(__file__).parent / "sim" / "data" / "toy_chip.yaml"


def _render(renderable: Any, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False).print(renderable)
    return out.getvalue()


def _fits(text: str) -> None:
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80, text


def test_simulate_table_fits_80_columns_in_compares_units():
    for model, chip, rules in (
        ("mlp:784-256-256-10", "edge_sram", "bp,fa,ifa"),
        ("resnet18", "split_cores", "bp,ifa:30,kp:decay=10,dfa,brsf"),
    ):
        result = simulate(model, chip, rules)
        text = _render(simulate_table(result, load_chip(chip).clock_hz))
        _fits(text)
        for spec in result.rules:
            assert spec in text  # no rule name folded apart
    text = _render(simulate_table(simulate("mlp:784-256-256-10", "edge_sram", "bp"), 2e8))
    assert "54.4 µJ" in text and "1.85 ms" in text and "545 kbit" in text


def test_simulate_output_at_columns_80():
    """The whole command, as a newcomer's 80-column terminal (or COLUMNS=80) shows it."""
    hwsim = Path(sys.executable).parent / "hwsim"
    done = subprocess.run(
        [str(hwsim), "simulate", "--model", "resnet18", "--algo", "bp,ifa:30,kp:decay=10"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("workload:")[0]
    _fits(table)
    assert " mJ " in table and " s " in table
    assert "input 3×32×32, batch 64, int8 weights" in done.stdout
    assert "optimizer momentum (1 state tensor per weight)" in done.stdout


def test_simulate_timeline_without_json_draws_a_png(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["simulate", "--chip", str(TOY), "--model", "mlp:4-3-2", "--timeline"]
    )
    assert result.exit_code == 0, result.output
    png = Path("reports/simulate/timeline_toy.png")
    assert f"→ {png}" in result.output
    assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


def _group(value: Any, rule: str, seeds: list[int], metrics: dict[str, Any]) -> dict[str, Any]:
    return {"value": value, "rule": rule, "seeds": seeds, "diverged": 0, "metrics": metrics}


def _stat(values: list[float], spread: float | None, mean: float | None = None) -> dict[str, Any]:
    mean = sum(values) / len(values) if mean is None else mean
    return {"mean": mean, "std": spread, "n": len(values), "values": values}


def test_one_seed_shows_no_spread():
    assert fmt_stat(_stat([0.91], None)) == "0.910"
    assert fmt_stat(_stat([0.91], 0.0)) == "0.910"  # an older file's 0: still not measured
    assert fmt_stat({"mean": 0.91, "std": 0.0, "values": [0.91]}) == "0.910"
    assert fmt_stat(_stat([0.9, 0.92], 0.0141)) == "0.910 ± 0.014"
    assert fmt_stat(None) == "—"
    one = {
        "kind": "angle",
        "parameter": "theta",
        "points": 1,
        "groups": [
            _group(0.0, "ifa", [0], {"final_test_accuracy": _stat([0.91], 0.0)}),
        ],
    }
    text = _render(sweep_table(one))
    assert "±" not in text and "0.910" in text


def test_sweep_tables_fit_80_columns():
    acc = _stat([0.912, 0.915, 0.909], 0.003, 0.912)
    curvature = {"hessian_trace": _stat([511.3, 300.1, 700.2], 212.8, 511.3)}
    curvature["top_eigenvalue"] = _stat([93.48, 80.1, 110.2], 33.93, 93.48)
    robust = {k: acc for k in ("pgd_true_accuracy", "pgd_transfer_accuracy", "corruption_accuracy")}
    metrics = {"final_test_accuracy": acc, "final_train_accuracy": acc, **curvature, **robust}
    rules = {
        "kind": "rules",
        "parameter": None,
        "points": 6,
        "groups": [_group(None, r, [0, 1, 2], metrics) for r in ("bp", "ifa:45", "kp:decay=10")],
    }
    init = {
        "kind": "init",
        "parameter": "gains",
        "points": 4,
        "groups": [_group([1.414, 0.5], r, [0, 1], metrics) for r in ("ifa", "fa")],
    }
    for summary in (rules, init):
        text = _render(sweep_table(summary))
        _fits(text)
        assert "0.912 ± 0.003" in text and "511.3 ± 212.8" in text
    assert "1.414 × 0.5" in _render(sweep_table(init))


def test_chip_sweep_table_fits_80_columns(tmp_path: Path):
    import json

    from hwsim.cli.sweep_chip import chip_sweep_table

    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        main,
        [
            "sweep", "chip", "--model", "mlp:784-256-10", "--out", str(out), "--quiet",
            "--set", "memories.weight_sram.read_energy_pj=53,106",
            "--set", "memories.feedback_sram.read_energy_pj=1,2",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "sweep.json").read_text())
    text = _render(chip_sweep_table(summary))
    assert "…" not in text and max(map(len, text.splitlines())) <= 80, text
    # nothing cropped at the right edge: every row closes, every number of the last column shows
    assert all(line.rstrip().endswith(("┓", "┃", "┩", "│", "┘")) for line in text.splitlines()[1:9])
    for point in [summary["base"], *summary["points"]]:
        for r in point["rules"].values():
            assert f"{100 * r['transport_share']:.2f} %" in text
    assert "memories.weight_sram.read_energy_pj" in text  # the whole key, in the caption
    # BP's share on a mirror chip is its mirror sync, not weight transport: the column says so
    flat = " ".join(text.split())
    assert "W to error unit" in flat and "transport" not in flat.split("W to error unit")[0]
    assert "weight transport's wires plus a mirror's synchronization" in flat
    assert "on a mirror chip BP transports 0 bits and this is its mirror sync" in flat
