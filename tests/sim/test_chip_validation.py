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
    "duplicate_key.yaml": [":16: memories.wmem.word_bits: key is given twice"],
    "feedback_kind.yaml": [
        ":60: placement.feedback_weights: feedback_storage is sram, so it must name a "
        "register_file or sram or global_buffer level, but 'dram' is a dram"
    ],
    "missing_key.yaml": [":33: memories.buf.read_energy_pj: missing required key"],
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
        ":10: memories.rf.size_kb: unknown key (allowed: bandwidth_bits_per_cycle, banks, "
        "burst_words, endurance_cycles, kind, latency_cycles, leakage_mw, ports, "
        "read_energy_pj, retention_s, size_bytes, source, technology, word_bits, "
        "write_energy_pj)"
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


@pytest.mark.parametrize("name", ["negative_size.yaml", "syntax.yaml", "two_problems.yaml"])
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
