"""Chip files that build on others (``extends:``), ``--set`` overrides, and the effective chip.

Line numbers in the expected messages are counted by hand in the files written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.core.resources import CHIPS_DIR
from hwsim.sim import simulate
from hwsim.sim.chip import chip_yaml, load_chip
from hwsim.sim.chip_document import merge, parse_override

TOY = Path(__file__).parent / "data" / "toy_chip.yaml"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(InputError) as info:
        load_chip(path, overrides=overrides)
    return str(info.value)


# --------------------------------------------------------------------------- merge rule


def test_merge_rule_mappings_merge_others_replace_null_deletes():
    base = {"a": {"x": 1, "y": [1, 2], "z": {"p": 1}}, "b": 2, "c": 3}
    over = {"a": {"y": [9], "z": {"q": 2}, "new": 5}, "c": None, "d": 4}
    merged, _ = merge(base, {}, over, {})
    assert merged == {"a": {"x": 1, "y": [9], "z": {"p": 1, "q": 2}, "new": 5}, "b": 2, "d": 4}
    assert list(merged) == ["a", "b", "d"]  # inherited order kept, new keys after
    assert list(merged["a"]) == ["x", "y", "z", "new"]
    assert base == {"a": {"x": 1, "y": [1, 2], "z": {"p": 1}}, "b": 2, "c": 3}  # unchanged
    # a mapping replaces a scalar and the other way round
    assert merge({"a": 1}, {}, {"a": {"k": 1}}, {})[0] == {"a": {"k": 1}}
    assert merge({"a": {"k": 1}}, {}, {"a": 2}, {})[0] == {"a": 2}


def test_child_gives_only_what_differs(tmp_path: Path):
    child = _write(
        tmp_path / "child.yaml",
        f"extends: {TOY}\n"
        "name: toy2\n"
        "memories:\n"
        "  wmem: {read_energy_pj: 7}\n"
        "  dram: null\n"
        "  extra: {kind: dram, size_bytes: 4096, word_bits: 64, read_energy_pj: 9,"
        " write_energy_pj: 9}\n"
        "training:\n"
        "  pinned: [weights]\n",
    )
    chip, toy = load_chip(child), load_chip(TOY)
    assert chip.name == "toy2" and chip.version == 1  # version inherited
    wmem = chip.memory("wmem")
    assert wmem.read_energy_pj == 7 and wmem.write_energy_pj == 3 and wmem.leakage_mw == 1
    assert [m.name for m in chip.memories] == ["rf", "wmem", "fbmem", "rom", "buf", "extra"]
    assert chip.pinned == ("weights",)
    assert chip.loop_order == toy.loop_order == "batch_outer"  # the rest of training inherited
    assert chip.interconnect == toy.interconnect and chip.placement == toy.placement
    assert "extends" not in chip.document
    assert chip.document["memories"]["wmem"]["read_energy_pj"] == 7


def test_extends_a_shipped_chip_by_name(tmp_path: Path):
    child = _write(
        tmp_path / "mine.yaml",
        "version: 1\nextends: edge_sram\nname: mine\nmemories:\n"
        "  weight_sram: {read_energy_pj: 53}\n",
    )
    chip, shipped = load_chip(child), load_chip(CHIPS_DIR / "edge_sram.yaml")
    assert chip.memory("weight_sram").read_energy_pj == 53
    assert chip.memory("weight_sram").source == shipped.memory("weight_sram").source
    others = [m for m in chip.memories if m.name != "weight_sram"]
    assert others == [m for m in shipped.memories if m.name != "weight_sram"]
    assert chip.sources["memories.weight_sram.read_energy_pj"].value == 53


def test_chain_of_three(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    _write(
        tmp_path / "sub" / "b.yaml",
        f"extends: {TOY}\nname: b\nclock_hz: 2000000\nmemories:\n  wmem: {{read_energy_pj: 5}}\n",
    )
    a = _write(
        tmp_path / "a.yaml",
        "extends: sub/b.yaml\nname: a\nmemories:\n  wmem: {write_energy_pj: 6}\n",
    )
    chip = load_chip(a)
    assert chip.name == "a" and chip.clock_hz == 2e6
    assert (chip.memory("wmem").read_energy_pj, chip.memory("wmem").write_energy_pj) == (5, 6)
    assert chip.memory("fbmem") == load_chip(TOY).memory("fbmem")


def test_a_cycle_is_an_error_naming_the_files(tmp_path: Path):
    a = _write(tmp_path / "a.yaml", "extends: b.yaml\nname: a\n")
    b = _write(tmp_path / "b.yaml", "name: b\nextends: a.yaml\n")
    message = _error(a)
    assert message.startswith(f"{b}:2: extends: cycle: ")
    assert f"{a} → {b} → {a}" in message
    own = _write(tmp_path / "self.yaml", "extends: self.yaml\nname: s\n")
    assert f"{own} → {own}" in _error(own)


def test_bad_extends_values(tmp_path: Path):
    typo = _write(tmp_path / "t.yaml", "name: t\nextends: edge_sramm\n")
    message = _error(typo)
    assert message.startswith(f"{typo}:2: extends: no shipped chip is called 'edge_sramm'")
    assert "edge_sram" in message
    missing = _write(tmp_path / "m.yaml", "name: m\nextends: nowhere/base.yaml\n")
    assert _error(missing).startswith(
        f"{missing}:2: extends: chip file nowhere/base.yaml not found"
    )
    number = _write(tmp_path / "n.yaml", "name: n\nextends: 3\n")
    assert _error(number).startswith(f"{number}:2: extends: must name a shipped chip")


# --------------------------------------------------------------------------- where problems point


def test_problems_point_at_the_file_and_line_the_value_came_from(tmp_path: Path):
    parent = _write(
        tmp_path / "parent.yaml",
        f"extends: {TOY}\n"  # 1
        "name: parent\n"  # 2
        "memories:\n"  # 3
        "  fbmem:\n"  # 4
        "    size_bytes: 0\n"  # 5: bad, inherited by the child
        "    word_bits: 16\n",  # 6
    )
    child = _write(
        tmp_path / "child.yaml",
        "version: 1\n"  # 1
        "extends: parent.yaml\n"  # 2
        "name: child\n"  # 3
        "memories:\n"  # 4
        "  wmem:\n"  # 5
        "    read_energy_pj: -3\n"  # 6: bad, the child's own
        "training:\n"  # 7
        "  loop_order: sideways\n",  # 8: bad, the child's own
    )
    lines = _error(child).splitlines()
    assert sorted(lines) == sorted(
        [
            f"{child}:6: memories.wmem.read_energy_pj: must be zero or more, got -3",
            f"{parent}:5: memories.fbmem.size_bytes: must be positive, got 0",
            f"{child}:8: training.loop_order: must be one of auto, batch_outer, weight_outer, "
            "got 'sideways'",
        ]
    )
    # a value of the grandparent (toy_chip.yaml line 16: wmem's read_energy_pj), broken by none
    # but checked after validation: chip.where names the file it came from
    fixed = _write(tmp_path / "fixed.yaml", "extends: parent.yaml\nname: fixed\n")
    chip = load_chip(fixed, overrides=("memories.fbmem.size_bytes=64",))
    assert chip.where("memories.wmem.read_energy_pj") == f"{TOY}:16: memories.wmem.read_energy_pj"
    assert chip.where("memories.fbmem.size_bytes") == "--set memories.fbmem.size_bytes: " + (
        "memories.fbmem.size_bytes"
    )
    assert chip.where("memories.fbmem.word_bits") == f"{parent}:6: memories.fbmem.word_bits"


def test_a_missing_required_key_points_at_the_mapping_that_lost_it(tmp_path: Path):
    child = _write(
        tmp_path / "c.yaml",
        f"extends: {TOY}\nname: c\nmemories:\n  wmem:\n    word_bits: null\n",
    )
    assert _error(child) == f"{child}:4: memories.wmem.word_bits: missing required key"


def test_a_child_must_name_itself(tmp_path: Path):
    child = _write(tmp_path / "c.yaml", f"version: 1\nextends: {TOY}\nclock_hz: 5\n")
    message = _error(child)
    assert message.startswith(f"{child}:2: name: a chip that extends another must give its own")
    assert "'toy'" in message
    assert load_chip(child, overrides=("name=named",)).name == "named"


def test_null_that_deletes_nothing_is_an_error(tmp_path: Path):
    child = _write(tmp_path / "c.yaml", f"extends: {TOY}\nname: c\nmemories:\n  wmme: null\n")
    message = _error(child)
    assert message.startswith(f"{child}:4: memories.wmme: null deletes an inherited key")
    assert "rf, wmem, fbmem, rom, buf, dram" in message


# --------------------------------------------------------------------------- overrides


def test_parse_override():
    assert parse_override("memories.a.read_energy_pj=2") == (("memories", "a", "read_energy_pj"), 2)
    assert parse_override("training.pinned=[weights, errors]") == (
        ("training", "pinned"),
        ["weights", "errors"],
    )
    assert parse_override("training.mirror_sync_via=") == (("training", "mirror_sync_via"), None)
    for bad in ("memories", "=2", "a..b=1", ".a=1"):
        with pytest.raises(InputError, match=r"expected KEY\.PATH=VALUE"):
            parse_override(bad)


def test_overrides_apply_in_order_and_validate():
    chip = load_chip(
        TOY,
        overrides=(
            "memories.wmem.read_energy_pj=2.5",
            "memories.wmem.read_energy_pj=4",
            "training.pinned=[weights, activations]",
            "compute.mac_energy_pj.int16=0.8",
            "training.loop_order=weight_outer",
            "description=edited",
        ),
    )
    assert chip.memory("wmem").read_energy_pj == 4
    assert chip.pinned == ("weights", "activations")
    assert chip.mac_energy_pj == {"int8": 0.25, "int16": 0.8, "int32": 4, "fp32": 5}
    assert chip.loop_order == "weight_outer" and chip.description == "edited"
    assert load_chip(TOY) != chip and load_chip(TOY).memory("wmem").read_energy_pj == 2


def test_override_errors_name_the_option():
    message = _error(TOY, ("memories.wmme.read_energy_pj=2",))
    assert message == (
        "--set memories.wmme.read_energy_pj: memories has no 'wmme' (it has: rf, wmem, fbmem, "
        "rom, buf, dram)"
    )
    assert _error(TOY, ("memories.wmem.read_energy_pj=lots",)) == (
        "--set memories.wmem.read_energy_pj: memories.wmem.read_energy_pj: must be a number, "
        "got a string 'lots'"
    )
    assert _error(TOY, ("memories.wmem.read_enrgy_pj=2",)).startswith(
        "--set memories.wmem.read_enrgy_pj: memories.wmem.read_enrgy_pj: unknown key (allowed: "
    )
    assert _error(TOY, ("clok_hz=5",)).startswith("--set clok_hz: unknown chip key 'clok_hz'")
    assert _error(TOY, ("clock_hz.fast=5",)) == (
        "--set clock_hz.fast: clock_hz is a number (1000000), not a mapping: it has no keys to set"
    )
    assert _error(TOY, ("placement.weights=dramm",)).startswith(
        "--set placement.weights: placement.weights: names no memory level"
    )
    assert _error(TOY, ("memories.wmem.x=[1",)).startswith("--set memories.wmem.x:1: invalid YAML")


def test_deleting_with_an_override():
    chip = load_chip(TOY, overrides=("memories.wmem.leakage_mw=null",))
    assert chip.memory("wmem").leakage_mw == 0
    assert _error(TOY, ("interconnect.energy_per_bit_pj=null",)) == (
        f"{TOY}:49: interconnect.energy_per_bit_pj: missing required key"
    )
    assert _error(TOY, ("memories.wmem.nothing=null",)) == (
        "--set memories.wmem.nothing: the chip has no memories.wmem.nothing; nothing to delete"
    )


def test_errors_after_validation_name_the_override():
    """A rule the overridden storage cannot run names ``--set``, not a line of the file."""
    chip = load_chip(
        TOY,
        overrides=(
            "training.feedback_storage=prng",
            "training.prng_energy_per_value_pj=1",
            "placement.feedback_weights=null",
        ),
    )
    with pytest.raises(InputError) as info:
        simulate("mlp:4-3-2", chip, "kp")
    assert str(info.value).startswith("--set training.feedback_storage: training.feedback_storage")


def test_document_and_chip_yaml_round_trip(tmp_path: Path):
    child = _write(
        tmp_path / "c.yaml", "extends: edge_sram\nname: c\nmemories:\n  dram: {leakage_mw: 1}\n"
    )
    chip = load_chip(child, overrides=("memories.rf.read_energy_pj=3",))
    json.dumps(chip.document)  # JSON-dumpable
    text = chip_yaml(chip)
    assert text.index("version:") < text.index("name: c") < text.index("memories:")
    assert "extends" not in text
    effective = _write(tmp_path / "effective.yaml", text)
    again = load_chip(effective)
    assert again == chip and again.document == chip.document
    assert again.memory("rf").read_energy_pj == 3 and again.memory("dram").leakage_mw == 1
    assert list(chip.document["memories"]) == [m.name for m in chip.memories]


# --------------------------------------------------------------------------- hwsim simulate --set


def _simulate_json(*extra: str) -> dict:
    result = CliRunner().invoke(
        main,
        [
            *("simulate", "--chip", str(TOY), "--model", "mlp:4-3-2", "--batch-size", "3"),
            *("--algo", "bp,fa", "--json", *extra),
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_simulate_set_changes_energy_by_the_accesses_times_the_price():
    """B (FA) and BP's mirror live in fbmem: layer 1's 2×3 8-bit weights are 48 bits = 3 words
    of 16 bits, read once per group of 2 samples, 2 groups for a batch of 3: 6 read accesses.
    Raising fbmem's read energy from 2 to 4 pJ adds 6 × 2 = 12 pJ, and no cycle."""
    base = _simulate_json()
    changed = _simulate_json("--set", "memories.fbmem.read_energy_pj=4")
    for rule in ("bp", "fa"):
        b, c = base["rules"][rule], changed["rules"][rule]
        tensor = "weight_mirror" if rule == "bp" else "feedback_weights"
        assert b["counts"]["fbmem"][tensor]["backward"]["read"]["accesses"] == 6
        assert c["energy_pj"]["total"] - b["energy_pj"]["total"] == pytest.approx(12, abs=1e-9)
        assert c["latency_cycles"] == b["latency_cycles"]
        assert c["macs"] == b["macs"]


def test_simulate_set_bad_input_is_exit_2_without_traceback():
    result = CliRunner().invoke(
        main,
        [
            *("simulate", "--chip", str(TOY), "--model", "mlp:4-3-2"),
            *("--set", "memories.wmme.read_energy_pj=2"),
        ],
    )
    assert result.exit_code == 2
    assert "--set memories.wmme.read_energy_pj: memories has no 'wmme'" in result.output
    assert "Traceback" not in result.output


def test_a_bare_name_that_is_no_chip_lists_the_shipped_ones(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as info:
        load_chip("edge_sramm")
    assert str(info.value).startswith("edge_sramm: cannot read file (no such file, and no ship")
    assert "dram_prng, edge_sram, online_edge" in str(info.value)
