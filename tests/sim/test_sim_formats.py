"""Number formats (docs/simulator.md, "Number formats"): promotion, the chip's MAC table by
format, workload formats (contract version 2, version 1 inferred), pricing by format.

Toy network as in test_sim_counts.py: MLP 4-3-2 with biases, batch 3, SGD+momentum (1 state
tensor). Layer 0: 12 weights + 3 biases, layer 1: 6 weights + 2 biases = 23 parameters.
MACs of one step, by hand:
  forward  3 samples × (12 + 6)            = 54   (weight × activation)
  backward 3 samples × 6 (layer 1 only)    = 18   (B or W × error; layer 0 sends none down)
  gradient 3 samples × (12 + 6)            = 54   (activation × error)
  update   23 parameters × (1 + 1 state)   = 46   (weight, gradient, optimizer state)
  total                                      172
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.core.formats import holds, parse_format, promote, unit_for
from hwsim.core.resources import CHIPS_DIR
from hwsim.core.workload import workload_from_dict
from hwsim.sim import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.model_specs import build_workload

DATA = Path(__file__).parent / "data"
TOY_YAML = DATA / "toy_chip.yaml"  # mac_energy_pj {int8: 0.25, int32: 4, fp32: 5}


def toy_doc(**kw):
    return build_workload("mlp:4-3-2", batch_size=3, **kw)


def chip_file(tmp_path: Path, mac_energy_pj: dict, **training) -> Path:
    """The toy chip with another MAC table and training keys (None: key removed), as a file."""
    data = yaml.safe_load(TOY_YAML.read_text())
    data["compute"]["mac_energy_pj"] = mac_energy_pj
    data["training"].update(training)
    data["training"] = {k: v for k, v in data["training"].items() if v is not None}
    path = tmp_path / "chip.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------
# the promotion rule


@pytest.mark.parametrize(
    ("operands", "expected"),
    [
        (("int8", "int8"), "int8"),  # int × int: int of the widest width
        (("int4", "int8"), "int8"),
        (("int8", "int16", "int16"), "int16"),  # an update: int8 W, int16 ΔW and state
        (("int1", "int8"), "int8"),  # sign feedback × int8 errors
        (("int8", "fp32"), "fp32"),  # any float makes it float: the widest float
        (("fp16", "int8"), "fp16"),  # the int (8) fits the float's 16 bits
        (("fp8", "int8"), "fp8"),  # equal widths: the float stays
        (("fp8", "int16"), "fp16"),  # int wider than the float: narrowest float ≥ 16, fp16 first
        (("bf16", "int16"), "bf16"),  # bf16 counts as 16 bits
        (("bf16", "int32"), "fp32"),
        (("fp16", "fp32"), "fp32"),
        (("fp8", "bf16"), "bf16"),
        (("fp16", "bf16"), "fp32"),  # neither 16-bit float holds the other
        (("int64", "fp16"), "fp32"),  # no float is 64 bits wide: the widest, fp32
        (("int8", "int16", "fp16"), "fp16"),
    ],
)
def test_promotion_rule(operands, expected):
    assert promote(*operands) == expected


@pytest.mark.parametrize(
    ("needed", "supported", "unit"),
    [
        ("int8", ("int8", "int32"), "int8"),  # the format itself
        ("int8", ("int16", "int32"), "int16"),  # the narrowest wider int
        ("int16", ("int8", "int32"), "int32"),
        ("fp8", ("fp32", "bf16", "fp16"), "fp16"),  # 16-bit tie: fp16 before bf16
        ("bf16", ("fp16", "fp32"), "fp32"),  # fp16 does not hold bf16
        ("fp16", ("bf16",), None),  # nor bf16 fp16
        ("int8", ("fp16", "fp32"), None),  # never across families
        ("fp32", ("int8", "int32"), None),
    ],
)
def test_the_unit_that_runs_a_format(needed, supported, unit):
    assert unit_for(needed, supported) == unit
    assert holds("fp32", "bf16") and not holds("int32", "fp8")


def test_format_names_parse_and_bad_ones_are_input_errors():
    assert parse_format("INT8").name == "int8" and parse_format("bf16").bits == 16
    assert (parse_format("int6").family, parse_format("fp8").family) == ("int", "float")
    for bad in ("fp12", "int0", "int08", "uint8", 8, None):
        with pytest.raises(InputError, match="unknown number format"):
            parse_format(bad)


# ---------------------------------------------------------------------------------------------
# pricing by format


def test_fp32_errors_are_priced_at_the_fp32_entry():
    """FA with int8 W, activations, B, gradients and state, fp32 errors, on the toy chip:
    backward int8 B × fp32 error → fp32, gradient int8 x × fp32 error → fp32, forward and
    update stay int8. Compute = 54 × 0.25 + 18 × 5 + 54 × 5 + 46 × 0.25
    = 13.5 + 90 + 270 + 11.5 = 385 pJ (every backward and gradient MAC at exactly the fp32
    entry; before formats they were priced at the 32-bit int entry, 4 pJ)."""
    work = workload_from_dict(toy_doc(error_format="fp32"))
    assert {layer.error_bits for layer in work.layers} == {32}  # the format sets the width
    for spec in ("fa", "bp"):
        r = simulate(work, TOY_YAML, spec).rules[spec]
        assert r.step.counts.macs == {
            ("backward", "fp32"): 18,
            ("forward", "int8"): 54,
            ("gradient", "fp32"): 54,
            ("update", "int8"): 46,
        }
        assert r.step.energy.breakdown_pj["compute"] == 385.0
        assert r.floor is not None and r.floor.compute_pj == 385.0  # the floor prices the same


def test_16_bit_update_operands_are_priced_at_the_int16_entry(tmp_path):
    """16-bit gradients and momentum (int16 by default for bare bits): the update MAC is
    int8 W × int16 ΔW × int16 state → int16, 46 MACs × 1 pJ = 46 pJ. Without an int16 entry it
    runs on the narrowest wider int unit, int32: 46 × 4 = 184 pJ."""
    table = {"int8": 0.25, "int16": 1, "int32": 4, "fp32": 5}
    sixteen = {"gradient_bits": 16, "optimizer_state_bits": 16}
    work = workload_from_dict(toy_doc())
    r = simulate(work, chip_file(tmp_path, table, **sixteen), "fa").rules["fa"]
    assert r.step.counts.macs[("update", "int16")] == 46
    # forward 54 + backward 18 + gradient 54 = 126 int8 MACs × 0.25 = 31.5, update 46
    assert r.step.energy.breakdown_pj["compute"] == 31.5 + 46.0
    del table["int16"]
    r = simulate(work, chip_file(tmp_path, table, **sixteen), "fa").rules["fa"]
    assert r.step.energy.breakdown_pj["compute"] == 31.5 + 184.0


def test_shipped_chips_price_16_bit_updates_at_int16():
    """edge_sram keeps 16-bit gradients and momentum: its update MACs are int16 at 0.83 pJ.
    mlp:4-3-2 (momentum) has 46 update MACs: 46 × 0.83 pJ."""
    chip = load_chip(CHIPS_DIR / "edge_sram.yaml")
    assert (chip.gradient_format, chip.optimizer_state_format) == ("int16", "int16")
    r = simulate(workload_from_dict(toy_doc()), chip, "fa").rules["fa"]
    assert r.step.counts.macs[("update", "int16")] == 46
    by_format = {"int8": 126 * 0.23, "int16": 46 * 0.83}
    assert r.step.energy.breakdown_pj["compute"] == pytest.approx(sum(by_format.values()))


def test_gradient_format_companion_sets_the_update_format(tmp_path):
    """training.gradient_format: bf16 alone sets 16-bit ΔW; int8 W × bf16 ΔW × int8 state →
    bf16, which the chip lacks: it runs on fp32 (fp16 does not hold bf16): 46 × 5 = 230 pJ."""
    table = {"int8": 0.25, "fp16": 2, "fp32": 5}
    chip = load_chip(chip_file(tmp_path, table, gradient_bits=None, gradient_format="bf16"))
    assert (chip.gradient_bits, chip.gradient_format) == (16, "bf16")
    r = simulate(workload_from_dict(toy_doc()), chip, "fa").rules["fa"]
    assert r.step.counts.macs[("update", "bf16")] == 46
    assert r.step.energy.breakdown_pj["compute"] == 126 * 0.25 + 46 * 5


def test_an_old_chip_file_with_bit_keys_loads_and_prices_as_before(tmp_path):
    """Schema-1 keys 8 and 32 are int8 and int32. On the all-int8 toy workload, compute is
    172 MACs × 0.25 = 43 pJ as before formats, and every number equals the new-key chip's."""
    old = load_chip(chip_file(tmp_path, {8: 0.25, 32: 4}))
    assert old.mac_energy_pj == {"int8": 0.25, "int32": 4.0}
    work = workload_from_dict(toy_doc())
    r_old = simulate(work, old, "bp,fa")
    assert r_old.rules["fa"].step.energy.breakdown_pj["compute"] == 43.0
    new = load_chip(chip_file(tmp_path, {"int8": 0.25, "int32": 4}))
    r_new = simulate(work, new, "bp,fa")
    for spec in ("bp", "fa"):
        assert r_old.rules[spec].step.energy == r_new.rules[spec].step.energy
    # 16-bit updates on an old chip: int32, the smallest bit key ≥ 16, as the old rule said
    old16 = load_chip(chip_file(tmp_path, {8: 0.25, 32: 4}, gradient_bits=16))
    fa = simulate(work, old16, "fa").rules["fa"]
    assert fa.step.energy.breakdown_pj["compute"] == 126 * 0.25 + 46 * 4


def test_unsupported_format_is_an_input_error_naming_chip_key_format_and_layer(tmp_path):
    path = chip_file(tmp_path, {8: 0.25, 32: 4})
    work = workload_from_dict(toy_doc(error_bits=32))  # 32-bit errors alone: fp32
    with pytest.raises(InputError) as info:
        simulate(work, path, "fa")
    message = str(info.value)
    text = path.read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if t.strip().startswith("mac_energy_pj"))
    assert message == (
        f"{path}:{line}: compute.mac_energy_pj: no MAC unit runs fp32 for the backward MACs of "
        "layer 'fc2' (fa) (supported: int8, int32); add an entry fp32: <pJ per MAC> (or a "
        "wider format of the same family)"
    )
    args = ["simulate", "--chip", str(path), "--model", "mlp:4-3-2", "--algo", "fa"]
    result = CliRunner().invoke(main, [*args, "--error-format", "fp32"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"error: {message}"]


# ---------------------------------------------------------------------------------------------
# the chip's MAC table


def test_chip_table_keys_are_validated_with_file_and_line(tmp_path):
    path = chip_file(tmp_path, {"int8": 0.25, 8: 0.3, "fp12": 1})
    with pytest.raises(InputError) as info:
        load_chip(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert "compute.mac_energy_pj.8: int8 is given twice" in lines[0]
    assert "compute.mac_energy_pj.fp12: unknown number format 'fp12'" in lines[1]
    assert all(line.startswith(f"{path}:") for line in lines)
    bad = chip_file(tmp_path, {"int8": 0.25}, gradient_bits=16, gradient_format="fp32")
    with pytest.raises(InputError, match=r"training\.gradient_format: fp32 has 32 bits but"):
        load_chip(bad)


def test_chip_show_prints_the_mac_table_by_format():
    result = CliRunner().invoke(main, ["chip", "show", str(CHIPS_DIR / "edge_sram.yaml")])
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0] in ("int8", "int16", "int32", "bf16", "fp16", "fp32"):
            rows[cells[0]] = cells[1]
    assert rows == {
        "int8": "0.23",
        "int16": "0.83",
        "int32": "3.2",
        "bf16": "1.06",
        "fp16": "1.5",
        "fp32": "4.6",
    }
    assert "gradients int16, optimizer state int16" in result.output


# ---------------------------------------------------------------------------------------------
# workload formats


def test_a_version_1_workload_reads_with_inferred_formats():
    """Version 1 has widths only: weights, activations, feedback int<bits>; errors fp32 at 32
    bits (training recorded float32 errors), else int<bits>."""
    doc = toy_doc()
    doc["version"] = 1
    for i, layer in enumerate(doc["layers"]):
        for key in ("weight_format", "activation_format", "feedback_format", "error_format"):
            del layer[key]
        layer.update(weight_bits=4, feedback_bits=1, error_bits=32 if i else 16)
    work = workload_from_dict(doc)
    top, bottom = work.layers[1], work.layers[0]
    assert (top.weight_format, top.activation_format, top.feedback_format) == (
        "int4",
        "int8",
        "int1",
    )
    assert (top.error_format, bottom.error_format) == ("fp32", "int16")
    # priced by those formats: layer 1's backward MAC int1 B × fp32 error → fp32
    macs = simulate(work, TOY_YAML, "fa").rules["fa"].step.counts.macs
    assert macs[("backward", "fp32")] == 18


def test_version_2_formats_are_required_and_agree_with_the_widths():
    doc = toy_doc()
    del doc["layers"][1]["error_format"]
    with pytest.raises(InputError, match=r"layers\[1\]\.error_format: missing required key"):
        workload_from_dict(doc, "doc")
    doc = toy_doc()
    doc["layers"][0]["weight_format"] = "fp16"
    with pytest.raises(InputError, match=r"weight_format: fp16 has 16 bits but weight_bits is 8"):
        workload_from_dict(doc, "doc")
    doc["layers"][0]["weight_format"] = "fp9"
    with pytest.raises(InputError, match=r"layers\[0\]\.weight_format: unknown number format"):
        workload_from_dict(doc, "doc")


def test_error_format_and_error_bits_on_the_command_line():
    def run(*options: str):
        return CliRunner().invoke(
            main,
            ["simulate", "--chip", str(TOY_YAML), "--model", "mlp:4-3-2", "--json", *options],
        )

    by_format, by_bits = run("--error-format", "fp32"), run("--error-bits", "32")
    assert by_format.exit_code == by_bits.exit_code == 0, by_format.output
    assert by_format.output == by_bits.output  # 32 bits alone mean fp32
    fa = json.loads(by_format.output)["rules"]["fa"]
    assert fa["macs_by_format"] == {
        "forward": {"int8": 64 * 18},  # batch 64 × (12 + 6)
        "backward": {"fp32": 64 * 6},
        "gradient": {"fp32": 64 * 18},
        "update": {"int8": 46},
    }
    assert json.loads(by_format.output)["workload"]["error_format"] == ["fp32"]
    both = run("--error-bits", "32", "--error-format", "fp32")
    assert both.exit_code == 0 and both.output == by_format.output
    contradiction = run("--error-bits", "16", "--error-format", "fp32")
    assert contradiction.exit_code == 2
    assert contradiction.output.strip().splitlines() == [
        "error: --error-bits 16 contradicts --error-format fp32 (32 bits): give one, or both "
        "agreeing"
    ]
    unknown = run("--error-format", "fp12")
    assert unknown.exit_code == 2 and "--error-format: unknown number format 'fp12'" in (
        unknown.output
    )
