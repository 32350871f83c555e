"""`hwsim compare` through the CLI, on tiny settings."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.resources import shipped_chip_names
from hwsim.core.rules import rule_dirname
from hwsim.experiments.compare import WEAR_COLUMNS
from hwsim.sim import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.explain import explain_gap

TINY_EXPERIMENT = """\
version: 1
name: tiny
dataset: {name: digits, train_size: 300}
network: {model: mlp, depth: 3, width: 16}
quantization: {weight_bits: 8, act_bits: 8, feedback_bits: 4}
training: {epochs: 2, batch_size: 64, optimizer: adam, lr: 0.003}
seeds: [0]
rules: [bp, fa, ifa, "ifa:30"]
chips: [edge_sram]
"""


def _invoke(*args: str):
    return CliRunner().invoke(main, ["compare", "--quiet", *args])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("compare")
    experiment = root / "tiny.yaml"
    experiment.write_text(TINY_EXPERIMENT)
    out = root / "out"
    result = _invoke("--experiment", str(experiment), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    return experiment, out, json.loads(result.output)


def test_summary_schema_and_invariants(tiny):
    _, out, printed = tiny
    summary = json.loads((out / "summary.json").read_text())
    assert printed == summary
    assert (summary["format"], summary["version"]) == ("hwsim-compare", 1)
    assert summary["rule_order"] == ["bp", "fa", "ifa", "ifa:30"]
    assert summary["data"] == {"dataset": "digits", "train_samples": 300, "test_samples": 360}
    assert summary["chips"]["edge_sram"]["rules"] == summary["rules"]
    rules = summary["rules"]
    assert rules["bp"]["weight_transport_bits"] > 0
    assert rules["bp"]["feedback_read_bits"] == 0
    for spec in ("fa", "ifa", "ifa:30"):
        assert rules[spec]["weight_transport_bits"] == 0
        assert rules[spec]["sync_write_bits"] == 0
        assert rules[spec]["feedback_read_bits"] > 0
    for spec, block in rules.items():
        # wiring: the summary carries what the simulator gives for the run's own workload.json
        # (the simulator's numbers are derived by hand in tests/sim)
        workload = out / block["run_dirs"][0] / "workload.json"
        simulated = simulate(workload, "edge_sram", spec).rules[spec]
        assert block["energy_pj"]["total"] == simulated.step.energy.total_pj
        assert block["run_totals"]["energy_pj"]["total"] == simulated.run_totals.energy.total_pj
        assert block["latency_cycles"] == simulated.step.latency_cycles
        assert 0 <= block["test_accuracy"]["final"] <= 1
        assert block["test_accuracy"]["best"] >= block["test_accuracy"]["final"]
        assert block["ratios_to_bp"]["energy_per_step"] == pytest.approx(
            block["energy_pj"]["total"] / rules["bp"]["energy_pj"]["total"]
        )
    assert set(rules["bp"]["final_alignment_deg"].values()) == {0.0}
    assert all(a > 0 for a in rules["fa"]["final_alignment_deg"].values())
    # BP reads W for its error phase, FA/IFA read B instead: same MACs, different tensors (the
    # mapper may keep both in the same cheap level; the reads add up per level either way)
    assert rules["bp"]["macs"] == rules["fa"]["macs"]
    assert rules["fa"]["feedback_read_bits"] > 0 == rules["bp"]["feedback_read_bits"]
    assert rules["bp"]["weight_transport_bits"] > 0 == rules["fa"]["weight_transport_bits"]
    for rule in ("bp", "fa"):
        assert sum(rules[rule]["weight_reads_bits"].values()) > 0


def test_summary_carries_the_gap_to_bp_and_the_floor(tiny):
    """Wiring: each rule's own workload is simulated; BP's gap to it is explained across the two
    runs (hwsim.sim.explain, derived by hand in tests/sim/test_sim_explain.py)."""
    _, out, summary = tiny
    rules = summary["rules"]
    chip = load_chip(out / "chips" / "edge_sram.yaml")

    def simulated(spec):
        workload = out / rules[spec]["run_dirs"][0] / "workload.json"
        return simulate(workload, chip, spec).rules[spec]

    bp = simulated("bp")
    assert "gap_to_bp" not in rules["bp"]
    for spec, block in rules.items():
        result = bp if spec == "bp" else simulated(spec)
        assert block["floor_pj"] == result.floor.to_dict()
        assert block["energy_over_floor"] == result.energy_over_floor >= 1.0
        sim_file = out / "simulation" / "edge_sram" / f"{rule_dirname(spec)}.json"
        sim = json.loads(sim_file.read_text())
        assert sim["floor_pj"] == block["floor_pj"]
        if spec == "bp":
            continue
        assert block["gap_to_bp"] == explain_gap(bp, result, chip).to_dict() == sim["gap_to_bp"]
        energy = block["gap_to_bp"]["energy_pj"]
        assert energy["difference"] == pytest.approx(
            rules["bp"]["energy_pj"]["total"] - block["energy_pj"]["total"], rel=1e-12
        )
        assert sum(energy["causes"].values()) == pytest.approx(energy["difference"], rel=1e-9)


def test_accesses_csv_sums_equal_summary(tiny):
    """Wiring: accesses.csv and summary.json are two views of the same counts."""
    _, out, summary = tiny
    with open(out / "accesses.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {
        "chip",
        "rule",
        "level",
        "tensor",
        "phase",
        "direction",
        "bits",
        "words",
        "accesses",
        "energy_pj",
        "layer",
        *WEAR_COLUMNS,
    }
    for spec, block in summary["rules"].items():
        mine = [r for r in rows if r["rule"] == spec and r["chip"] == "edge_sram"]
        energy = sum(float(r["energy_pj"]) for r in mine)
        assert energy == pytest.approx(block["energy_pj"]["breakdown"]["memory"], rel=1e-9)
        transport = sum(int(r["bits"]) for r in mine if r["direction"] == "transport")
        assert transport == block["weight_transport_bits"]
        feedback = sum(
            int(r["bits"])
            for r in mine
            if r["tensor"] == "feedback_weights" and r["direction"] == "read"
        )
        assert feedback == block["feedback_read_bits"]


def _run_dir(out: Path, rule: str, seed: int = 0) -> Path:
    """The one run directory of ``rule`` and ``seed``: ``runs/<rule>-seed<k>-<key>``."""
    (found,) = (out / "runs").glob(f"{rule_dirname(rule)}-seed{seed}-*")
    return found


def test_run_directory_layout(tiny):
    from hwsim.experiments.experiment import load_experiment

    experiment, out, summary = tiny
    expected = load_experiment(experiment)
    for rule in summary["rule_order"]:
        # each run's directory is keyed by a hash of what determines it
        name = f"{rule_dirname(rule)}-seed0-{expected.run_key(rule, 0)}"
        assert summary["rules"][rule]["run_dirs"] == [f"runs/{name}"]
    for rel in (
        "experiment.yaml",
        "chips/edge_sram.yaml",
        f"runs/ifa-30-seed0-{expected.run_key('ifa:30', 0)}/metrics.jsonl",
        f"runs/bp-seed0-{expected.run_key('bp', 0)}/workload.json",
        "simulation/edge_sram/ifa-30.json",
    ):
        assert (out / rel).is_file(), rel
    sim = json.loads((out / "simulation/edge_sram/bp.json").read_text())
    assert sim["timeline"] and sim["weight_transport_bits"] > 0


def test_other_training_settings_are_refused_then_forced_keeping_runs(tiny, tmp_path):
    import shutil

    experiment, first, _ = tiny
    out = tmp_path / "copy"
    shutil.copytree(first, out)
    before = (out / "summary.json").read_bytes()
    result = _invoke("--experiment", str(experiment), "--out", str(out), "--epochs", "1")
    assert result.exit_code == 2
    assert "holds a compare run with other training settings" in result.output
    assert "training.epochs: 2 → 1" in result.output and "Traceback" not in result.output
    assert (out / "summary.json").read_bytes() == before
    kept = sorted(p.name for p in (out / "runs").iterdir())
    result = _invoke(
        "--experiment", str(experiment), "--out", str(out), "--epochs", "1", "--algo", "bp"
    )
    assert result.exit_code == 2
    result = _invoke(
        "--experiment", str(experiment), "--out", str(out), "--epochs", "1", "--algo", "bp",
        "--force", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # the 2-epoch runs stay (keyed apart from the new 1-epoch run) and are reused on return
    after = sorted(p.name for p in (out / "runs").iterdir())
    assert set(kept) < set(after) and len(after) == len(kept) + 1
    assert json.loads(result.output)["rules"]["bp"]["epochs_completed"] == 1
    stamps = {p.name: (p / "metrics.jsonl").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    result = _invoke("--experiment", str(experiment), "--out", str(out), "--force", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rules"]["bp"]["epochs_completed"] == 2
    assert stamps == {
        p.name: (p / "metrics.jsonl").stat().st_mtime_ns for p in (out / "runs").iterdir()
    }


def test_same_seed_same_numbers_and_force(tiny, tmp_path):
    experiment, _, summary = tiny
    again = tmp_path / "again"
    result = _invoke("--experiment", str(experiment), "--out", str(again), "--json")
    assert result.exit_code == 0, result.output
    second = json.loads(result.output)
    for spec in summary["rule_order"]:
        a, b = summary["rules"][spec], second["rules"][spec]
        assert a["test_accuracy"] == b["test_accuracy"] and a["energy_pj"] == b["energy_pj"]
        assert a["counts"] == b["counts"] and a["latency_cycles"] == b["latency_cycles"]
    result = _invoke(
        "--experiment", str(experiment), "--out", str(again), "--force", "--algo", "bp,fa"
    )
    assert result.exit_code == 0, result.output
    forced = json.loads((again / "summary.json").read_text())
    assert forced["rule_order"] == ["bp", "fa"]
    assert not (again / "simulation" / "edge_sram" / "ifa.json").exists()
    assert _run_dir(again, "ifa").is_dir()  # --force keeps trained runs


def test_several_chips(tiny, tmp_path):
    experiment, _, _ = tiny
    out = tmp_path / "chips"
    result = _invoke(
        "--experiment",
        str(experiment),
        "--out",
        str(out),
        "--algo",
        "bp,ifa",
        "--chip",
        "edge_sram",
        "--chip",
        "dram_accel",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["chip_order"] == ["edge_sram", "dram_accel"] and "rules" not in summary
    for chip in summary["chip_order"]:
        rules = summary["chips"][chip]["rules"]
        assert rules["bp"]["weight_transport_bits"] > 0 == rules["ifa"]["weight_transport_bits"]
    # same training, different chips: accuracy identical, energy not
    a, b = (summary["chips"][c]["rules"]["bp"] for c in summary["chip_order"])
    assert a["test_accuracy"] == b["test_accuracy"] and a["energy_pj"] != b["energy_pj"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algo", "bp,sgd"], "unknown learning rule 'sgd'"),
        (["--algo", "ifa:200"], "outside [0, 180]"),
        (["--dataset", "mnist"], "--data-dir"),
        (["--chip", "no_such_chip"], "chip file no_such_chip not found"),
        (["--epochs", "0"], "epochs"),
        (["--algo", "kp:decay=-1"], "must be >= 0"),
        (
            ["--algo", "bp,kp", "--chip", "df_lnpu"],
            "df_lnpu.yaml:112: training.feedback_storage: rule 'kp'",
        ),
    ],
)
def test_bad_input_exit_2(tiny, tmp_path, args, message):
    experiment, _, _ = tiny
    out = tmp_path / "bad"
    result = _invoke("--experiment", str(experiment), "--out", str(out), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (out / "summary.json").exists()


def test_malformed_chip_and_experiment_files(tiny, tmp_path):
    experiment, _, _ = tiny
    chip = tmp_path / "broken_chip.yaml"
    chip.write_text("version: 1\nname: broken\nclock_hz: -5\n")
    result = _invoke(
        "--experiment", str(experiment), "--out", str(tmp_path / "o1"), "--chip", str(chip)
    )
    assert result.exit_code == 2 and str(chip) in result.output
    bad = tmp_path / "bad_experiment.yaml"
    bad.write_text(
        TINY_EXPERIMENT.replace("epochs: 2", "epochs: two").replace(
            "seeds: [0]", "seeds: [0]\nlearning_rate: 3"
        )
    )
    result = _invoke("--experiment", str(bad), "--out", str(tmp_path / "o2"))
    assert result.exit_code == 2
    assert f"{bad}:6: training.epochs: expected int" in result.output
    assert f"{bad}:8: learning_rate: unknown key" in result.output
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_interrupt_keeps_finished_rules_and_resumes(tiny, tmp_path, monkeypatch):
    experiment, _, summary = tiny
    import hwsim.models.training

    real_train = hwsim.models.training.train

    def train_then_interrupt(config, out_dir, **kwargs):
        if config.algo == "ifa":
            raise KeyboardInterrupt
        return real_train(config, out_dir, **kwargs)

    monkeypatch.setattr(hwsim.models.training, "train", train_then_interrupt)
    out = tmp_path / "interrupted"
    # One worker: the runs train in this process, where the patched train() is.
    result = _invoke("--experiment", str(experiment), "--out", str(out), "--workers", "1")
    assert result.exit_code == 130, result.output
    assert (_run_dir(out, "fa") / "result.json").is_file()
    assert not (out / "summary.json").exists()
    finished = (_run_dir(out, "bp") / "metrics.jsonl").stat().st_mtime_ns

    monkeypatch.undo()
    result = _invoke("--experiment", str(experiment), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert (_run_dir(out, "bp") / "metrics.jsonl").stat().st_mtime_ns == finished  # not retrained
    resumed = json.loads(result.output)
    for spec in summary["rule_order"]:
        assert resumed["rules"][spec]["test_accuracy"] == summary["rules"][spec]["test_accuracy"]


def test_default_compare_end_to_end(tmp_path):
    """The built-in default (mnist5k, quantized MLP, split_cores), shortened to one epoch."""
    out = tmp_path / "default"
    result = _invoke("--epochs", "1", "--seed", "0", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["data"]["dataset"] == "mnist5k" and summary["chip_order"] == ["split_cores"]
    assert summary["rule_order"] == ["bp", "fa", "ifa"]
    rules = summary["rules"]
    # BP keeps a mirror of layers 1-5 in the error core (4 × 256 × 256 + 10 × 256 = 264,704
    # weights × 8 bits = 2,117,632 bits) and syncs it after the update through DRAM: written
    # there, then into the mirror. FA and IFA never write their B after init.
    assert rules["bp"]["sync_write_bits"] == 2 * 2_117_632
    assert rules["fa"]["sync_write_bits"] == rules["ifa"]["sync_write_bits"] == 0
    assert rules["bp"]["weight_transport_bits"] == 0
    assert rules["bp"]["energy_pj"]["total"] > rules["ifa"]["energy_pj"]["total"]
    # every shipped chip is surveyed with the same workloads, the report's chip first
    survey = summary["chip_survey"]
    assert survey[0]["chip"] == "split_cores" and survey[0]["in_report"]
    assert sorted(e["chip"] for e in survey) == sorted(shipped_chip_names())
    for entry in survey:
        assert entry["rules"]["bp"]["energy_vs_bp"] == 1.0
        assert set(entry["rules"]) == {"bp", "fa", "ifa"}
    assert "The same workloads on every shipped chip" in (out / "report.md").read_text()
    assert rules["ifa"]["test_accuracy"]["final"] > 0.5
    assert (out / "report.html").is_file()


ALL_RULES = ["bp", "fa", "ifa", "dfa", "usf", "brsf", "frsf", "kp"]


def test_every_rule_trains_and_is_priced_end_to_end(tiny, tmp_path):
    """Every rule through the CLI: trained, simulated on the experiment's chip, reported; on
    the shipped chips that regenerate B, KP (whose B changes) is named as not simulated."""
    experiment, _, _ = tiny
    out = tmp_path / "all"
    result = _invoke(
        "--experiment", str(experiment), "--out", str(out), "--algo", ",".join(ALL_RULES), "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rule_order"] == ALL_RULES
    rules = summary["chips"]["edge_sram"]["rules"]
    for rule in ALL_RULES:
        block = rules[rule]
        assert block["status"] == "completed" and block["energy_pj"]["total"] > 0
        assert len(block["final_alignment_deg"]) == 3
        if rule != "bp":
            assert set(block["gap_to_bp"]["energy_pj"]["causes"]) >= {"feedback_update"}
    # who moves W to the error unit: BP all of it, the sign rules one bit per weight, the rest
    # nothing (layers 1 and 2 send errors: 16·16 + 10·16 weights)
    sent = 16 * 16 + 10 * 16
    assert rules["bp"]["weight_transport_bits"] == sent * 8
    for rule in ("usf", "brsf", "frsf"):
        assert rules[rule]["weight_transport_bits"] == sent
    for rule in ("fa", "ifa", "dfa", "kp"):
        assert rules[rule]["weight_transport_bits"] == 0
    survey = {e["chip"]: e for e in summary["chip_survey"]}
    for chip in ("dfa_prng", "dram_prng", "df_lnpu"):
        assert set(survey[chip]["unsupported"]) == {"kp"}
        assert "kp" not in survey[chip]["rules"] and "dfa" in survey[chip]["rules"]
    assert "unsupported" not in survey["split_cores"]
    report = (out / "report.md").read_text()
    assert "kp cannot train on dfa_prng, dram_prng, df_lnpu (not simulated there)" in (
        report.replace("df_lnpu, dfa_prng, dram_prng", "dfa_prng, dram_prng, df_lnpu")
    )
    for rule in ALL_RULES:
        assert (_run_dir(out, rule) / "workload.json").exists()


def test_experiment_by_shipped_name_from_any_folder(tmp_path, monkeypatch):
    from hwsim.core.resources import EXPERIMENTS_DIR
    from hwsim.experiments.experiment import load_experiment

    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert load_experiment("rules").path == EXPERIMENTS_DIR / "rules.yaml"
    assert load_experiment("rules.yaml").name == load_experiment("rules").name
    # the shipped file is read (its settings checked), then the bad option refused: exit 2
    result = _invoke("--experiment", "rules", "--epochs", "0", "--out", "o")
    assert result.exit_code == 2 and "--epochs 0" in result.output, result.output
    result = _invoke("--experiment", "no_such", "--out", "o")
    assert result.exit_code == 2, result.output
    assert "no shipped experiment of that name" in result.output
    assert "default, online, rules" in result.output
    assert not (tmp_path / "o").exists()
    shown = " ".join(CliRunner().invoke(main, ["compare", "--help"]).output.split())
    assert "a shipped experiment by name: default, online, rules" in shown


def test_experiment_yaml_names_chips_never_by_this_machines_path(tiny, tmp_path, monkeypatch):
    """Shipped chips by name, a chip file of the user's relative to the output folder."""
    import yaml

    from hwsim.experiments.experiment import load_experiment

    experiment, _, _ = tiny
    mine = tmp_path / "chips" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text("extends: edge_sram\nname: mine\n")
    out = tmp_path / "runs" / "cmp"
    result = _invoke(
        "--experiment", str(experiment), "--out", str(out), "--algo", "bp",
        "--chip", "dram_accel", "--chip", str(mine),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (out / "experiment.yaml").read_text()
    assert str(tmp_path) not in text
    assert yaml.safe_load(text)["chips"] == ["dram_accel", "../../chips/mine.yaml"]
    monkeypatch.chdir(tmp_path / "chips")  # resolved from the folder, wherever one stands
    again = load_experiment(out / "experiment.yaml")
    assert [c.name for c in again.chips] == ["dram_accel.yaml", "mine.yaml"]
    assert again.chips[1] == mine.resolve()
