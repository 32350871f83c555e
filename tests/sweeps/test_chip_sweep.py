"""``hwsim sweep chip``: a grid of chip variants simulated per rule, checked against hand counts.

The toy chip (tests/sim/data/toy_chip.yaml) keeps B (FA) and BP's mirror in ``fbmem`` and walks
the batch outside (``loop_order: batch_outer``, 2 samples per fetch). On ``mlp:4-3-2`` with a
batch of 3: layer 1's B (and mirror) is 2×3 = 6 weights × 8 bits = 48 bits = 3 words of 16
bits, fetched once per group of samples, 2 groups: **6 reads of fbmem per step**, and nothing
else of the step reads fbmem. BP's mirror sync writes those 48 bits once per step: 3 write
accesses × 3 pJ plus 48 bits × 0.5 pJ/bit over the interconnect = **33 pJ**. In transport
mode BP carries W over the link instead: 48 bits per group, 2 groups, × 0.5 pJ/bit = 48 pJ.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.experiments.chip_sweep import (
    make_chip_sweep_spec,
    parse_parameters,
    split_values,
    transport_energy_pj,
)
from hwsim.render.chip_sweep import chip_sweep_figure
from hwsim.sim import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.model_specs import build_workload

TOY = Path(__file__).resolve().parent.parent / "sim" / "data" / "toy_chip.yaml"
FBMEM_READ = "memories.fbmem.read_energy_pj"


@pytest.fixture
def workload(tmp_path: Path) -> Path:
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(build_workload("mlp:4-3-2", batch_size=3)))
    return path


def _sweep(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["sweep", "chip", *args])
    return result.exit_code, result.output


def _json_sweep(*args: str) -> dict:
    code, output = _sweep(*args, "--json")
    assert code == 0, output
    return json.loads(output)


def test_split_values_and_parameters():
    assert split_values("1,2.5, 4") == ["1", "2.5", "4"]
    assert split_values("[weights, errors],[],{a: 1, b: 2},'x,y'") == [
        "[weights, errors]",
        "[]",
        "{a: 1, b: 2}",
        "'x,y'",
    ]
    (p, q) = parse_parameters([f"{FBMEM_READ}=1,2,4", "training.pinned=[weights],[]"])
    assert (p.key, p.values, p.texts) == (FBMEM_READ, (1, 2, 4), ("1", "2", "4"))
    assert q.values == (["weights"], []) and q.override(0) == "training.pinned=[weights]"
    for bad, message in (
        ([], "needs at least one --set"),
        (["memories.x"], "expected KEY.PATH=V1,V2"),
        ([f"{FBMEM_READ}=1,,2"], "none empty"),
        ([f"{FBMEM_READ}=1", f"{FBMEM_READ}=2"], "given twice"),
        ([f"{FBMEM_READ}=1,1"], "a value is given twice"),
        ([f"{FBMEM_READ}=null"], "cannot be null"),
    ):
        with pytest.raises(InputError, match=message):
            parse_parameters(bad)


def test_energy_moves_by_the_accesses_times_the_price(tmp_path: Path, workload: Path):
    doc = _json_sweep(
        *("--chip", str(TOY), "--workload", str(workload), "--algo", "bp,fa"),
        *("--set", f"{FBMEM_READ}=2,4,8", "--out", str(tmp_path / "out")),
    )
    assert doc["format"] == "hwsim-chip-sweep" and doc["rules"] == ["bp", "fa"]
    assert doc["parameters"] == [{"key": FBMEM_READ, "values": [2, 4, 8]}]
    points = doc["points"]
    assert [p["values"][FBMEM_READ] for p in points] == [2, 4, 8]
    for rule in ("bp", "fa"):
        first = points[0]["rules"][rule]
        assert first["accesses"]["fbmem"]["read"] == 6
        assert first == doc["base"]["rules"][rule]  # 2 pJ is the toy's own price
        for point in points[1:]:
            r = point["rules"][rule]
            delta = 6 * (point["values"][FBMEM_READ] - 2)
            assert r["energy_pj"] - first["energy_pj"] == pytest.approx(delta, abs=1e-9)
            assert r["accesses"] == first["accesses"]  # the counts do not move
            assert r["latency_cycles"] == first["latency_cycles"]  # nor the time
            assert r["latency_s"] == first["latency_s"]
            assert r["energy_vs_bp"] == r["energy_pj"] / point["rules"]["bp"]["energy_pj"]
    for point in points:
        bp, fa = point["rules"]["bp"], point["rules"]["fa"]
        assert bp["transport_pj"] == pytest.approx(33) and fa["transport_pj"] == 0
        assert bp["transport_share"] == pytest.approx(33 / bp["energy_pj"])
        assert fa["transport_share"] == 0 and bp["energy_vs_bp"] == 1


def test_a_grid_of_two_parameters(tmp_path: Path, workload: Path):
    out = tmp_path / "grid"
    doc = _json_sweep(
        *("--chip", str(TOY), "--workload", str(workload), "--algo", "bp,fa"),
        *("--set", f"{FBMEM_READ}=2,4", "--set", "training.bp_weight_access=mirror,transport"),
        *("--out", str(out)),
    )
    values = [tuple(p["values"].values()) for p in doc["points"]]
    assert values == [(2, "mirror"), (2, "transport"), (4, "mirror"), (4, "transport")]
    by = {v: p["rules"] for v, p in zip(values, doc["points"], strict=True)}
    # transport mode: BP reads no mirror, so fbmem's price leaves it alone; FA still pays 6 × 2
    assert by[(4, "transport")]["bp"]["energy_pj"] == by[(2, "transport")]["bp"]["energy_pj"]
    assert by[(4, "transport")]["fa"]["energy_pj"] - by[(2, "transport")]["fa"][
        "energy_pj"
    ] == pytest.approx(12)
    assert by[(2, "transport")]["bp"]["transport_pj"] == pytest.approx(48)
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(rows) == 8 and list(rows[0])[:3] == [FBMEM_READ, "training.bp_weight_access", "rule"]
    assert float(rows[1]["energy_pj"]) == by[(2, "mirror")]["fa"]["energy_pj"]
    assert (out / "chip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "sweep.json").read_text()) == doc


def test_transport_energy_is_the_gap_causes_it_names():
    """BP's transport energy is the transport_wire + mirror_sync causes of its gap to FA
    (FA has none of either), on a mirror chip and on a transport chip."""
    for overrides in ((), ("training.bp_weight_access=transport",)):
        chip = load_chip(TOY, overrides=overrides)
        result = simulate(build_workload("mlp:4-3-2", batch_size=3), chip, "bp,fa")
        causes = result.gaps_to_bp["fa"].energy.causes_pj
        expected = causes["transport_wire"] + causes["mirror_sync"]
        assert transport_energy_pj(result.rules["bp"], chip) == pytest.approx(expected)
        assert transport_energy_pj(result.rules["fa"], chip) == 0


def _fake_compare_run(base: Path) -> Path:
    """A compare run directory as hwsim compare lays it out, with run dirs of odd names and a
    different workload per rule (BP batch 3, FA batch 4)."""
    run = base / "run"
    for name, batch in (("weird-bp-dir", 3), ("fa-anything", 4)):
        (run / "runs" / name).mkdir(parents=True)
        (run / "runs" / name / "workload.json").write_text(
            json.dumps(build_workload("mlp:4-3-2", batch_size=batch))
        )
    (run / "chips").mkdir()
    (run / "chips" / "toy.yaml").write_text(TOY.read_text())
    summary = {
        "format": "hwsim-compare",
        "rule_order": ["bp", "fa"],
        "chip_order": ["toy"],
        "chips": {
            "toy": {
                "path": "/nowhere/toy.yaml",
                "copy": "chips/toy.yaml",
                "rules": {
                    "bp": {"run_dirs": ["runs/weird-bp-dir", "runs/other-seed"]},
                    "fa": {"run_dirs": ["runs/fa-anything"]},
                },
            }
        },
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_a_compare_run_gives_each_rule_its_workload_and_the_chip(tmp_path: Path):
    run = _fake_compare_run(tmp_path)
    doc = _json_sweep("--run", str(run), "--set", f"{FBMEM_READ}=4", "--out", str(tmp_path / "o"))
    assert doc["rules"] == ["bp", "fa"]
    assert doc["chip"]["path"] == str(run / "chips" / "toy.yaml")
    assert doc["workloads"]["fa"] == str(run / "runs" / "fa-anything" / "workload.json")
    chip = load_chip(TOY, overrides=(f"{FBMEM_READ}=4",))
    for rule, batch in (("bp", 3), ("fa", 4)):
        expected = simulate(build_workload("mlp:4-3-2", batch_size=batch), chip, rule)
        assert doc["points"][0]["rules"][rule]["energy_pj"] == expected.rules[rule].energy_pj
    only_fa = _json_sweep(
        *("--run", str(run), "--algo", "fa", "--chip", str(TOY)),
        *("--set", f"{FBMEM_READ}=4", "--out", str(tmp_path / "o2")),
    )
    assert only_fa["rules"] == ["fa"] and only_fa["chip"]["path"] == str(TOY)


def test_compare_run_problems_are_exit_2(tmp_path: Path):
    run = _fake_compare_run(tmp_path)
    code, output = _sweep("--run", str(run), "--algo", "ifa", "--set", f"{FBMEM_READ}=4")
    assert code == 2 and "has no workload for ifa (it trained bp, fa)" in output
    (run / "runs" / "fa-anything" / "workload.json").unlink()
    code, output = _sweep("--run", str(run), "--set", f"{FBMEM_READ}=4")
    assert code == 2 and "fa-anything/workload.json: not found" in output
    code, output = _sweep("--run", str(tmp_path), "--set", f"{FBMEM_READ}=4")
    assert code == 2 and "summary.json" in output and "Traceback" not in output


def test_bad_options_are_exit_2_before_anything_is_written(tmp_path: Path, workload: Path):
    out = tmp_path / "out"
    common = ("--chip", str(TOY), "--workload", str(workload), "--out", str(out))
    for args, message in (
        ((*common, "--set", "memories.fbmme.read_energy_pj=1"), "memories has no 'fbmme'"),
        ((*common, "--set", f"{FBMEM_READ}=1,x"), f"--set {FBMEM_READ}: {FBMEM_READ}: must be"),
        ((*common, "--set", f"{FBMEM_READ}=1", "--epochs", "3"), "--epochs: does not apply"),
        ((*common, "--set", f"{FBMEM_READ}=1", "--angles", "3"), "--angles does not apply"),
        ((*common,), "needs at least one --set"),
        (("--set", f"{FBMEM_READ}=1"), "exactly one of --workload"),
        ((*common, "--model", "mlp:4-3-2", "--set", f"{FBMEM_READ}=1"), "exactly one of"),
        ((*common, "--set", "training.feedback_storage=prng", "--algo", "kp"), "point "),
    ):
        code, output = _sweep(*args)
        assert code == 2, (args, output)
        assert message in output, (args, output)
        assert "Traceback" not in output
    assert not out.exists()


def test_the_output_directory_is_guarded(tmp_path: Path, workload: Path):
    out = tmp_path / "out"
    args = ("--chip", str(TOY), "--workload", str(workload), "--out", str(out), "--quiet")
    assert _sweep(*args, "--set", f"{FBMEM_READ}=2")[0] == 0
    assert _sweep(*args, "--set", f"{FBMEM_READ}=2")[0] == 0  # the same sweep again
    code, output = _sweep(*args, "--set", f"{FBMEM_READ}=3")
    assert code == 2 and "different sweep-spec.json" in output
    assert _sweep(*args, "--set", f"{FBMEM_READ}=3", "--force")[0] == 0
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, output = _sweep(
        "--chip", str(TOY), "--workload", str(workload), "--out", str(foreign),
        "--set", f"{FBMEM_READ}=2",
    )  # fmt: skip
    assert code == 2 and "not empty" in output
    assert (foreign / "notes.txt").read_text() == "mine"


def test_the_table_and_the_figure(tmp_path: Path, workload: Path):
    code, output = _sweep(
        *("--chip", str(TOY), "--workload", str(workload), "--algo", "fa"),
        *("--set", "placement.weights=wmem,buf", "--out", str(tmp_path / "t")),
    )
    assert code == 0, output
    assert "chip sweep on toy (2 points)" in output and "(base)" in output
    assert "sweep.json" in output and "chip.png" in output
    summary = json.loads((tmp_path / "t" / "sweep.json").read_text())
    assert chip_sweep_figure(summary) == chip_sweep_figure(summary)  # categorical x, same bytes
    with pytest.raises(InputError, match="not a chip sweep"):
        chip_sweep_figure({"kind": "angle"})


def test_the_default_workload_spec_and_chip():
    spec = make_chip_sweep_spec([f"{FBMEM_READ}=1"], model="mlp:4-3-2")
    assert spec.rules == ("bp", "fa", "ifa") and spec.chip.endswith("edge_sram.yaml")
    assert spec.points() == [(0,)]


def test_the_chip_sweep_loads_no_torch(tmp_path: Path):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hwsim.cli import main\n"
        "r = CliRunner().invoke(main, ['sweep', 'chip', '--model', 'mlp:16-8-4', '--set',"
        " 'memories.weight_sram.read_energy_pj=53,106', '--quiet', '--out', 'o'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
