"""Malformed chip YAML: one message per problem, naming file, line and key; CLI exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.sim.chip import load_chip

BAD = Path(__file__).parent / "data" / "bad"

EXPECTED = {
    "bad_mode.yaml": [
        ":67: training.bp_weight_access: must be one of transport, mirror, transpose, got "
        "'teleport'"
    ],
    "bad_mirror_sync.yaml": [
        ":68: training.mirror_sync: must be one of full, changed, got 'sparse'"
    ],
    "bad_placement.yaml": [
        ":64: placement.gradients: names no memory level (have: rf, wmem, fbmem, rom, buf, "
        "dram), got 'l3_cache'"
    ],
    "bad_version.yaml": [":2: version: unsupported chip schema version 7 (this is 1)"],
    # a level that names a size model derives these: giving them too names both keys
    "derived_and_explicit.yaml": [
        f":{line}: memories.fbmem.{key}: given, but memories.fbmem.model: cacti45 "
        f"({BAD / 'derived_and_explicit.yaml'}:23) derives it; give one of the two (a chip that "
        f"extends another, or --set, removes an inherited value with {key}: null)"
        for line, key in ((26, "read_energy_pj"), (27, "write_energy_pj"))
    ],
    "duplicate_key.yaml": [":16: memories.wmem.word_bits: key is given twice"],
    "feedback_kind.yaml": [
        ":60: placement.feedback_weights: feedback_storage is sram, so it must name a "
        "register_file or sram or global_buffer level, but 'dram' is a dram"
    ],
    "missing_key.yaml": [":33: memories.buf.read_energy_pj: missing required key"],
    "model_technology.yaml": [
        ":24: memories.fbmem.model: model cacti45 sizes sram levels, not mram cells: no "
        "published size law for them is cited here (docs/technologies.md); remove model and "
        "give read_energy_pj, write_energy_pj, latency_cycles, leakage_mw (and area_mm2) with "
        "their source"
    ],
    "negative_size.yaml": [":14: memories.wmem.size_bytes: must be positive, got -64"],
    "prng_no_energy.yaml": [
        ":66: training.prng_energy_per_value_pj: required when feedback_storage is prng",
        ":60: placement.feedback_weights: feedback_storage is prng: regenerated feedback has "
        "no placement",
    ],
    "syntax.yaml": [":55: invalid YAML: expected ',' or '}', but got ':'"],
    "two_problems.yaml": [
        ":35: memories.buf.size_bytes: must be positive, got 0",
        ":51: interconnect.latency_cycles: must be an integer, got float 1.5",
    ],
    "unknown_key.yaml": [
        ":10: memories.rf.size_kb: unknown key (allowed: area_mm2, bandwidth_bits_per_cycle, "
        "banks, burst_words, endurance_cycles, kind, latency_cycles, leakage_mw, model, ports, "
        "read_energy_pj, retention_s, size_bytes, source, technology, word_bits, "
        "write_energy_pj)"
    ],
    "unknown_model.yaml": [
        ":23: memories.fbmem.model: unknown size model 'cacti7' (known: cacti45)"
    ],
    "weights_in_rom.yaml": [
        ":59: placement.weights: weights are written during training and cannot live in ROM 'rom'"
    ],
    "wrong_type.yaml": [":35: memories.buf.size_bytes: must be an integer, got a string 'big'"],
    "zero_bandwidth.yaml": [":50: interconnect.bandwidth_bits_per_cycle: must be positive, got 0"],
}


def test_every_fixture_has_an_expectation():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_chip_gives_one_message_per_problem(name):
    path = BAD / name
    with pytest.raises(InputError) as info:
        load_chip(path)
    assert str(info.value).splitlines() == [f"{path}{message}" for message in EXPECTED[name]]


@pytest.mark.parametrize(
    "name",
    [
        "negative_size.yaml",
        "syntax.yaml",
        "two_problems.yaml",
        "derived_and_explicit.yaml",
        "model_technology.yaml",
    ],
)
def test_cli_reports_bad_chip_with_exit_code_2_and_no_traceback(name):
    runner = CliRunner()
    for args in (
        ["chip", "validate", str(BAD / name)],
        ["simulate", "--model", "mlp:4-3-2", "--chip", str(BAD / name), "--json"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert EXPECTED[name][0].split(": ", 1)[1].split(":")[0] in result.output.replace("\n", "")


def test_missing_file_is_an_input_error():
    with pytest.raises(InputError, match="cannot read file"):
        load_chip(BAD / "nope.yaml")
