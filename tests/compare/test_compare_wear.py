"""`hwsim compare` on a compute-in-memory chip: the lifetime table it prints (80 columns, the
summary's numbers), and the ``update_sparsity`` block of a run trained before hwsim measured it
(null, and said so)."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from hwsim.cli.compare import _wear_table
from hwsim.render.wear import count_text

CIM_CHIP = Path(__file__).parent / "data" / "wear_cim.yaml"
EXPERIMENT = f"""\
version: 1
name: wear
dataset: {{name: digits, train_size: 200}}
network: {{model: mlp, depth: 2, width: 16}}
quantization: {{weight_bits: 8, act_bits: 8}}
training: {{epochs: 1, batch_size: 100}}
seeds: [0]
rules: [bp, fa]
chips: [{CIM_CHIP}, edge_sram]
"""


def _fits(text: str) -> None:
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80, text


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`hwsim compare` as a newcomer's 80-column terminal shows it."""
    root = tmp_path_factory.mktemp("wear")
    (root / "wear.yaml").write_text(EXPERIMENT)
    hwsim = Path(sys.executable).parent / "hwsim"
    done = subprocess.run(
        [str(hwsim), "compare", "--experiment", "wear.yaml", "--out", "out"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "COLUMNS": "80", "HWSIM_WORKERS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return root / "out", done.stdout


def test_lifetime_table_is_printed_for_the_cim_chip_only(compared: tuple[Path, str]) -> None:
    out, stdout = compared
    summary = json.loads((out / "summary.json").read_text())
    tables = stdout.split("report:")[0]
    _fits(tables)
    assert tables.count("lifetime on chip") == 1
    lifetime = tables.split("lifetime on chip wear_cim")[1]
    for rule in ("bp", "fa"):
        first = summary["chips"]["wear_cim"]["rules"][rule]["wear"]["first_failure"]
        row = next(line for line in lifetime.splitlines() if line.strip("│ ").startswith(rule))
        assert f"{first['tensor']} {first['layer']} in {first['level']}" in row
        assert count_text(first["steps"]) in row and count_text(first["runs"]) in row
        # these runs trained without a measurement (or with one the simulator did not apply):
        # the rate says which
        wear = summary["chips"]["wear_cim"]["rules"][rule]["wear"]
        assert ("measured" if wear["measured"] else "upper bound") in row


def test_update_sparsity_is_null_and_said_so_without_a_measurement(
    compared: tuple[Path, str],
) -> None:
    out, _ = compared
    summary = json.loads((out / "summary.json").read_text())
    for rule in ("bp", "fa"):
        run_dir = summary["chips"]["wear_cim"]["rules"][rule]["run_dirs"][0]
        workload = json.loads((out / run_dir / "workload.json").read_text())
        block = summary["update_sparsity"][rule]
        if "update_sparsity" in workload:  # the training side records it: a measured block
            assert block["measured"] is True and block["layers"]
            continue
        assert block["measured"] is False and block["layers"] is None
        assert block["seeds"] == [] and block["seeds_without"] == [0]
        assert block["simulated_seed"] == 0
        assert "every update programs every cell" in block["note"]
    report = (out / "report.md").read_text()
    assert "## Wear and lifetime" in report


def _long_names(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with the longest names a chip could give: level, tensor, layer, rule."""
    changed = copy.deepcopy(summary)
    changed["rule_order"] = ["ifa:30", *changed["rule_order"]]
    rules = changed["chips"]["wear_cim"]["rules"]
    rules["ifa:30"] = copy.deepcopy(rules["fa"])
    for block in rules.values():
        for t in block["wear"]["tensors"]:
            t["level"], t["tensor"] = "rram_crossbar_arrays", "feedback_weights"
        first = block["wear"]["first_failure"]
        first.update(level="rram_crossbar_arrays", tensor="feedback_weights", layer="conv12")
        first["steps"], first["runs"] = 123456789012.0, 0.000123
    return changed


def test_lifetime_table_fits_80_columns_with_long_names(compared: tuple[Path, str]) -> None:
    out, _ = compared
    summary = _long_names(json.loads((out / "summary.json").read_text()))
    table = _wear_table(summary, "wear_cim")
    assert table is not None and _wear_table(summary, "edge_sram") is None
    text = io.StringIO()
    Console(file=text, width=80, color_system=None, legacy_windows=False).print(table)
    _fits(text.getvalue())
    assert "1.23e+11" in text.getvalue() and "0.000123" in text.getvalue()
