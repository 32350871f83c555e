"""Every number of a shipped chip carries a ``source:`` note, the parsed ``Chip`` keeps it, and
``hwsim chip show`` prints each number beside its note."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.resources import CHIPS_DIR, shipped_chip_names
from hwsim.sim.chip import chip_from_dict, load_chip

SHIPPED = shipped_chip_names()


def _numbers(mapping: dict[Any, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every number of a parsed YAML document by dotted key path (the schema version aside)."""
    found: dict[str, Any] = {}
    for key, value in mapping.items():
        child = (*path, str(key))
        if isinstance(value, dict):
            found.update(_numbers(value, child))
        elif (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and child != ("version",)
        ):
            found[".".join(child)] = value
    return found


@pytest.mark.parametrize("name", SHIPPED)
def test_every_number_of_a_shipped_chip_is_sourced(name):
    path = CHIPS_DIR / f"{name}.yaml"
    chip = load_chip(path)
    # the chip as validated: a chip that extends another has its parent's numbers too
    numbers = _numbers(chip.document)
    if "extends" not in yaml.safe_load(path.read_text(encoding="utf-8")):
        assert numbers == _numbers(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert set(chip.sources) == set(numbers)
    for key, sourced in chip.sources.items():
        assert sourced.value == numbers[key], key
        assert sourced.source.strip(), key
        assert key.startswith(f"{sourced.at}.") or not sourced.at, key


@pytest.mark.parametrize("name", SHIPPED)
def test_chip_show_prints_every_sourced_number_with_its_source(name):
    result = CliRunner().invoke(main, ["chip", "show", name])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "sources (each number, then the source: note that covers it):" in lines
    chip = load_chip(CHIPS_DIR / f"{name}.yaml")
    assert chip.sources
    for key, sourced in chip.sources.items():
        header = f"  {sourced.at or 'chip'}: "
        relative = key.removeprefix(f"{sourced.at}.") if sourced.at else key
        at = [i for i, line in enumerate(lines) if line.startswith(header)]
        assert len(at) == 1, (key, header)
        numbers = lines[at[0]].removeprefix(header).split(", ")
        assert f"{relative} {sourced.value}" in numbers, key
        assert lines[at[0] + 1] == f"    source: {sourced.source}", key


def test_nearest_note_covers_a_number_and_a_mapping_note_wins():
    data = yaml.safe_load((CHIPS_DIR / "edge_sram.yaml").read_text(encoding="utf-8"))
    data["source"] = "top note"
    del data["compute"]["source"]
    data["compute"]["mac_energy_pj"]["source"] = "table note"  # replaces the shipped one
    del data["training"]["source"]
    sources = chip_from_dict(data).sources
    assert "version" not in sources
    assert sources["clock_hz"].source == "top note" and sources["clock_hz"].at == ""
    # compute lost its own note: its unit widths fall back to the document's
    assert sources["compute.forward.macs_per_cycle"].source == "top note"
    assert sources["compute.mac_energy_pj.int8"].source == "table note"
    assert sources["compute.mac_energy_pj.int8"].at == "compute.mac_energy_pj"
    assert sources["training.gradient_bits"].at == ""
    rf = sources["memories.rf.read_energy_pj"]
    assert rf.at == "memories.rf" and rf.value == 7.07 and "CACTI" in rf.source


def test_a_chip_without_notes_has_no_sources_and_show_says_so(tmp_path):
    data = yaml.safe_load((CHIPS_DIR / "edge_sram.yaml").read_text(encoding="utf-8"))

    def strip(mapping: dict[Any, Any]) -> None:
        mapping.pop("source", None)
        for value in mapping.values():
            if isinstance(value, dict):
                strip(value)

    strip(data)
    assert chip_from_dict(data).sources == {}
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = CliRunner().invoke(main, ["chip", "show", str(bare)])
    assert result.exit_code == 0, result.output
    assert "  (no source: notes)" in result.output.splitlines()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_on_chip_memories_leak_and_a_dram_zero_is_explained(name):
    chip = load_chip(CHIPS_DIR / f"{name}.yaml")
    for level in chip.memories:
        if level.kind == "dram":
            assert level.leakage_mw == 0 and "leakage 0" in (level.source or ""), level.name
        else:
            assert level.leakage_mw > 0, level.name
            assert "leakage" in (level.source or ""), level.name
