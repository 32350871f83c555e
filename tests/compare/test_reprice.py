"""The chip designer's loop: edit a chip, rerun `hwsim compare`, get the new prices without
training; `hwsim report --chip/--add-chip` on a finished run; the pricing cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.resources import CHIPS_DIR

EXPERIMENT = """\
version: 1
name: tiny
dataset: {name: digits, train_size: 200}
network: {model: mlp, depth: 3, width: 16}
quantization: {weight_bits: 8, act_bits: 8}
training: {epochs: 1, batch_size: 100}
seeds: [0, 1]
rules: [bp, fa]
chips: [mine.yaml]
"""


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _write_chip(path: Path, read_energy_pj: float) -> None:
    """edge_sram renamed ``mine``, with its activation SRAM's read energy set (the mapper keeps
    the tiny network's weights there: the cheapest SRAM per access, with room)."""
    document = yaml.safe_load((CHIPS_DIR / "edge_sram.yaml").read_text())
    document["name"] = "mine"
    document["memories"]["act_sram"]["read_energy_pj"] = read_energy_pj
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _stamps(out: Path) -> dict[str, int]:
    """Modification times of every file of every training run: training rewrites them."""
    return {
        p.relative_to(out).as_posix(): p.stat().st_mtime_ns
        for p in (out / "runs").rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reprice")
    (root / "tiny.yaml").write_text(EXPERIMENT)
    _write_chip(root / "mine.yaml", 50.9)
    out = root / "out"
    result = _invoke(
        "compare", "--experiment", str(root / "tiny.yaml"), "--out", str(out), "--quiet"
    )
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def copy(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained, tmp_path / "w")
    return tmp_path / "w"


def _sram_reads(rule_block: dict) -> int:
    """Accesses of the activation SRAM priced at its read energy (reads, transport reads)."""
    return sum(
        entry["accesses"]
        for phases in rule_block["counts"]["act_sram"].values()
        for directions in phases.values()
        for direction, entry in directions.items()
        if direction != "write"
    )


def test_editing_a_chip_reprices_without_training_or_torch(copy: Path):
    """The same command after a chip edit: new energies, exactly the edit's worth, from the
    same trained runs. Run in a fresh interpreter, which must never import torch."""
    out = copy / "out"
    before = json.loads((out / "summary.json").read_text())
    stamps = _stamps(out)
    _write_chip(copy / "mine.yaml", 101.8)  # the designer doubles one SRAM's read energy
    script = (
        "import sys\n"
        "from hwsim.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "assert 'torch' not in sys.modules and 'brevitas' not in sys.modules, 'torch loaded'\n"
    )
    args = ["compare", "--experiment", str(copy / "tiny.yaml"), "--out", str(out), "--quiet"]
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert _stamps(out) == stamps  # not one file of a training run was written again
    after = json.loads((out / "summary.json").read_text())
    # where the runs were trained, as the call that trained them recorded it
    assert after["environment"] == before["environment"]
    assert after["environment"]["workers"] >= 1 and "torch" in after["environment"]
    for rule in ("bp", "fa"):
        old, new = before["rules"][rule], after["rules"][rule]
        assert new["test_accuracy"] == old["test_accuracy"]
        assert new["latency_cycles"] == old["latency_cycles"]  # energy moves no cycle
        # every access is counted as before (act_sram stays the cheapest SRAM to read, so the
        # mapper keeps its mapping); each act_sram read now costs 50.9 pJ more
        assert new["macs"] == old["macs"] and _sram_reads(new) == _sram_reads(old) > 0
        added = new["energy_pj"]["total"] - old["energy_pj"]["total"]
        assert added == pytest.approx(_sram_reads(old) * 50.9, rel=1e-12)
    assert (
        yaml.safe_load((out / "chips" / "mine.yaml").read_text())["memories"]["act_sram"][
            "read_energy_pj"
        ]
        == 101.8
    )


def test_set_and_extends_price_like_an_edited_file(copy: Path):
    """``--set`` on compare, a chip that ``extends:`` a shipped one and an edited copy are the
    same chip: the same prices, and the run keeps the resolved chip it priced."""
    out = copy / "out"
    stamps = _stamps(out)
    base = ["compare", "--experiment", str(copy / "tiny.yaml"), "--out", str(out), "--quiet"]
    result = _invoke(*base, "--set", "memories.act_sram.read_energy_pj=101.8")
    assert result.exit_code == 0, result.output
    with_set = json.loads((out / "summary.json").read_text())["rules"]
    copied = yaml.safe_load((out / "chips" / "mine.yaml").read_text())
    assert copied["memories"]["act_sram"]["read_energy_pj"] == 101.8 and "extends" not in copied

    (copy / "child.yaml").write_text(
        "extends: edge_sram\nname: mine\nmemories:\n  act_sram:\n    read_energy_pj: 101.8\n"
    )
    result = _invoke(*base, "--chip", str(copy / "child.yaml"))
    assert result.exit_code == 0, result.output
    extended = json.loads((out / "summary.json").read_text())["rules"]
    _write_chip(copy / "mine.yaml", 101.8)
    result = _invoke(*base)
    assert result.exit_code == 0, result.output
    edited = json.loads((out / "summary.json").read_text())["rules"]
    for rule in ("bp", "fa"):
        assert (
            with_set[rule]["energy_pj"] == extended[rule]["energy_pj"] == edited[rule]["energy_pj"]
        )
    assert _stamps(out) == stamps
    # a bad override is named as the option, before anything is written
    before = (out / "summary.json").read_bytes()
    result = _invoke(*base, "--set", "memories.wieght_sram.read_energy_pj=1")
    assert result.exit_code == 2 and "--set memories.wieght_sram" in result.output
    assert (out / "summary.json").read_bytes() == before


def test_report_adds_and_swaps_chips_without_training(copy: Path, monkeypatch):
    import hwsim.models.training

    def no_training(*args, **kwargs):
        raise AssertionError("hwsim report trained a run")

    monkeypatch.setattr(hwsim.models.training, "train", no_training)
    out = copy / "out"
    stamps = _stamps(out)
    result = _invoke("report", str(out), "--add-chip", "dram_accel")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chip_order"] == ["mine", "dram_accel"]
    assert (out / "simulation" / "dram_accel" / "bp.json").is_file()
    on_mine = summary["chips"]["mine"]["rules"]["bp"]
    on_dram = summary["chips"]["dram_accel"]["rules"]["bp"]
    assert on_mine["test_accuracy"] == on_dram["test_accuracy"]  # the same runs
    assert on_mine["energy_pj"] != on_dram["energy_pj"]

    result = _invoke("report", str(out), "--chip", "edge_sram")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chip_order"] == ["edge_sram"]
    # what belonged to the chips no longer compared is gone; the runs are untouched
    assert not (out / "simulation" / "mine").exists() and not (out / "chips" / "mine.yaml").exists()
    assert not (out / "simulation" / "dram_accel").exists()
    assert sorted(p.name for p in (out / "chips").iterdir()) == ["edge_sram.yaml"]
    assert _stamps(out) == stamps


def test_report_never_trains_a_missing_run(copy: Path):
    out = copy / "out"
    (fa_run,) = (out / "runs").glob("fa-seed1-*")
    shutil.rmtree(fa_run)
    before = (out / "summary.json").read_bytes()
    result = _invoke("report", str(out), "--chip", "dram_accel")
    assert result.exit_code == 2, result.output
    assert f"no finished training run for {fa_run.name}" in result.output
    assert "Traceback" not in result.output
    assert (out / "summary.json").read_bytes() == before
    assert not (out / "simulation" / "dram_accel").exists()


def test_unchanged_chips_are_priced_from_the_cache(copy: Path, monkeypatch):
    import hwsim.experiments.compare as compare

    out = copy / "out"

    def priced() -> tuple:
        summary = json.loads((out / "summary.json").read_text())
        return summary["chips"]["mine"]["rules"], summary["chip_survey"]

    before = priced()

    def no_pricing(*args, **kwargs):
        raise AssertionError("priced again although nothing changed")

    monkeypatch.setattr(compare, "price_chip", no_pricing)
    args = ["compare", "--experiment", str(copy / "tiny.yaml"), "--out", str(out), "--quiet"]
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert priced() == before
    # a damaged cache entry is priced again, never trusted or fatal
    monkeypatch.undo()
    (out / "cache" / "mine.json").write_text("{not json")
    (out / "cache" / "dram_accel.json").write_text('{"key": "stale", "priced": {}}')
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert priced() == before


def test_the_compare_table_fits_80_columns(copy: Path):
    from rich.console import Console

    from hwsim.cli.compare import _table

    summary = json.loads((copy / "out" / "summary.json").read_text())
    console = Console(width=80, record=True)
    console.print(_table(summary, "mine"))
    text = console.export_text()
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    assert "± " in text and "2 seeds" in text  # the spread, and over how many seeds


def test_a_rerun_says_what_it_reuses(copy: Path):
    out = copy / "out"
    args = ["compare", "--experiment", str(copy / "tiny.yaml"), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--seeds", "0,1,2"])
    assert result.exit_code == 0, result.output
    assert f"reusing 4 finished training runs in {out / 'runs'}; training 2" in result.output


def test_compare_has_every_option_its_errors_suggest(tmp_path: Path):
    result = _invoke(
        "compare", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"), "--out",
        str(tmp_path / "o"), "--quiet",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no such option" not in result.output.lower()
    assert str(tmp_path / "none") in result.output and "Traceback" not in result.output
