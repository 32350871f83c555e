"""Memories that follow their size (``model: cacti45``) and silicon area.

Ground truth: the CACTI 7.0 45 nm runs the shipped chips cite (docs/simulator.md, "Reference
numbers"), Horowitz's 45 nm adder and multiplier areas, and accesses × prices counted from the
simulator's own counts. Line numbers in expected messages are counted by hand in the files
written here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.core.resources import CHIPS_DIR, shipped_chip_names
from hwsim.sim import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.memory_model import (
    CACTI45_SOURCE,
    DRAM_AREA_SOURCE,
    MAC_AREA_SOURCE,
    SRAM_AREA_SOURCE,
    SramFigures,
    cacti45,
    fit_power_law,
    mac_lane_area_um2,
)
from hwsim.sim.model_specs import build_workload

TOY = Path(__file__).parent / "data" / "toy_chip.yaml"
KB = 1024

#: The cited CACTI 7.0 runs (45 nm itrs-lstp, 350 K, one 64-bit port, one bank): read pJ,
#: write pJ, access ns, leakage mW; the data-array areas of the same configuration, mm².
CACTI = {
    8 * KB: (7.07, 9.03, 1.07, 0.0018, 0.0294),
    256 * KB: (50.9, 43.9, 2.77, 0.0485, 0.974),
    1024 * KB: (106.0, 86.5, 4.13, 0.184, 3.687),
}
#: How close the fit comes to those points (stated in docs/simulator.md): energies 3 %, access
#: time 1 %, area 3.5 %, leakage (proportional to capacity, one parameter) 13 %.
TOLERANCE = (0.03, 0.03, 0.01, 0.13, 0.035)


def _figures(size: float, **kw: int) -> tuple[float, ...]:
    f = cacti45(size, **kw)
    return (f.read_energy_pj, f.write_energy_pj, f.access_ns, f.leakage_mw, f.area_mm2)


@pytest.mark.parametrize("size", sorted(CACTI))
def test_the_fit_reproduces_the_cited_cacti_points(size):
    for got, cited, tolerance in zip(_figures(size), CACTI[size], TOLERANCE, strict=True):
        assert got == pytest.approx(cited, rel=tolerance)


def test_between_the_fitted_points_the_cited_32_kb_run_is_within_the_documented_error():
    # CACTI's 32 KB run (cited beside the others): 19.5 / 17.7 pJ, 1.43 ns, 0.0066 mW. A power law
    # misses its read energy by 21 % (docs/simulator.md says so); the rest within 10 %.
    read, write, access, leakage, _ = _figures(32 * KB)
    assert read == pytest.approx(19.5, rel=0.22) and read < 19.5
    assert write == pytest.approx(17.7, rel=0.04)
    assert access == pytest.approx(1.43, rel=0.10)
    assert leakage == pytest.approx(0.0066, rel=0.05)


def test_a_power_law_fit_recovers_a_power_law():
    # y = 3 x^0.5 exactly: the fit finds it; with the exponent fixed, the geometric mean
    law = fit_power_law([(4, 6), (16, 12), (64, 24)])
    assert (law.coefficient, law.exponent) == (pytest.approx(3), pytest.approx(0.5))
    fixed = fit_power_law([(1, 2), (2, 8)], exponent=1.0)  # y/x = 2 and 4: geometric mean √8
    assert fixed.coefficient == pytest.approx(math.sqrt(8)) and fixed.exponent == 1.0


def test_doubling_size_raises_energy_leakage_latency_and_area():
    size = 4 * KB
    while size <= 8 * 1024 * KB:
        small, large = _figures(size), _figures(2 * size)
        assert all(b > a for a, b in zip(small, large, strict=True)), size
        assert large[3] == pytest.approx(2 * small[3])  # leakage ∝ capacity
        size *= 2


def test_word_width_ports_and_banks():
    base = cacti45(256 * KB)
    # 2 ports: the 2-port CACTI run's ratios to the 1-port one (256 KB), exactly
    two = cacti45(256 * KB, ports=2)
    assert two.read_energy_pj / base.read_energy_pj == pytest.approx(101.12 / 50.90)
    assert two.write_energy_pj / base.write_energy_pj == pytest.approx(83.74 / 43.72)
    assert two.access_ns / base.access_ns == pytest.approx(3.125 / 2.772)
    assert two.area_mm2 / base.area_mm2 == pytest.approx(1.8507 / 0.9738)
    # wider words cost more per access, less than proportionally (CACTI: 1.62× at 128 bits)
    wide = cacti45(256 * KB, word_bits=128)
    assert 1.5 < wide.read_energy_pj / base.read_energy_pj < 2
    assert (wide.access_ns, wide.leakage_mw, wide.area_mm2) == (
        base.access_ns,
        base.leakage_mw,
        base.area_mm2,
    )
    assert cacti45(256 * KB, word_bits=64, burst_words=2) == wide  # a burst is a wider access
    # banks: an access touches one bank of size/banks; leakage and area are all banks'
    banked, one_mb = cacti45(2048 * KB, banks=2), cacti45(1024 * KB)
    assert banked.read_energy_pj == one_mb.read_energy_pj
    assert banked.access_ns == one_mb.access_ns
    assert banked.leakage_mw == pytest.approx(2 * one_mb.leakage_mw)
    assert banked.area_mm2 == pytest.approx(2 * one_mb.area_mm2)


def test_access_time_becomes_whole_cycles_of_the_clock():
    def cycles(ns: float, hz: float) -> int:
        return SramFigures(0, 0, ns, 0, 0).latency_cycles(hz)

    assert cycles(4.13, 200e6) == 1  # 0.83 cycle
    assert cycles(5.0, 200e6) == 1  # exactly one 5 ns cycle, not two
    assert cycles(2.77, 500e6) == 2  # 1.39 cycles (docs: the 256 KB access takes 2 at 500 MHz)
    assert cycles(0.1, 1e6) == 1  # at least one


def test_mac_lane_area_is_the_largest_supported_format():
    assert mac_lane_area_um2(["int8"]) == 282 + 36
    assert mac_lane_area_um2(["int8", "fp16"]) == 1640 + 1360
    assert mac_lane_area_um2(["int16"]) == 3495 + 137  # runs on the tabulated int32
    assert mac_lane_area_um2(["bf16"]) == 7700 + 4184  # fp16 does not hold bf16; fp32 does
    assert mac_lane_area_um2(["int4", "fp8"]) == 1640 + 1360  # int8's and fp16's
    assert mac_lane_area_um2(["int64"]) is None  # no tabulated format runs it
    assert mac_lane_area_um2([]) is None


# --------------------------------------------------------------------------- in a chip

#: act_sram of edge_sram, sized by the model: its explicit numbers removed (null), model named.
DERIVED_ACT = (
    "extends: edge_sram\n"  # 1
    "name: edge_sized\n"  # 2
    "memories:\n"  # 3
    "  act_sram:\n"  # 4
    "    model: cacti45\n"  # 5
    "    read_energy_pj: null\n"
    "    write_energy_pj: null\n"
    "    latency_cycles: null\n"
    "    leakage_mw: null\n"
    "    source: sized by model cacti45\n"
)


def _derived_chip(tmp_path: Path) -> Path:
    path = tmp_path / "edge_sized.yaml"
    path.write_text(DERIVED_ACT)
    return path


def test_a_sized_level_takes_the_models_numbers_and_moves_with_its_size(tmp_path: Path):
    path = _derived_chip(tmp_path)
    level = load_chip(path).memory("act_sram")
    fit = cacti45(256 * KB)
    assert level.model == "cacti45"
    assert (level.read_energy_pj, level.write_energy_pj, level.leakage_mw, level.area_mm2) == (
        fit.read_energy_pj,
        fit.write_energy_pj,
        fit.leakage_mw,
        fit.area_mm2,
    )
    assert level.latency_cycles == 1  # 2.79 ns at 200 MHz
    # --set size_bytes moves energy, leakage, latency and area as the model says
    big = load_chip(path, overrides=["memories.act_sram.size_bytes=4194304"]).memory("act_sram")
    four = cacti45(4096 * KB)
    assert big.read_energy_pj == four.read_energy_pj > level.read_energy_pj
    assert big.leakage_mw == pytest.approx(16 * level.leakage_mw)
    assert big.latency_cycles == 2  # 6.0 ns at 200 MHz
    assert big.area_mm2 == four.area_mm2 > level.area_mm2
    # the derived numbers are reported with the model's source, none of them with a file note
    chip = load_chip(path)
    derived = chip.derived_numbers()
    assert derived["memories.act_sram.read_energy_pj"].source == CACTI45_SOURCE
    assert derived["memories.act_sram.area_mm2"].source == SRAM_AREA_SOURCE
    assert "memories.act_sram.read_energy_pj" not in chip.sources


def test_an_inherited_explicit_value_under_a_model_names_both_keys(tmp_path: Path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: edge_sram\nname: x\nmemories:\n  act_sram: {model: cacti45}\n")
    with pytest.raises(InputError) as info:
        load_chip(child)
    edge = load_chip("edge_sram")
    lines = str(info.value).splitlines()
    assert len(lines) == 4
    for line, key in zip(
        lines, ("read_energy_pj", "write_energy_pj", "latency_cycles", "leakage_mw"), strict=True
    ):
        at = f"memories.act_sram.{key}"
        assert line == (
            f"{CHIPS_DIR / 'edge_sram.yaml'}:{edge.lines[at]}: {at}: given, but "
            f"memories.act_sram.model: cacti45 ({child}:4) derives it; give one of the two (a "
            f"chip that extends another, or --set, removes an inherited value with {key}: null)"
        )
    # and through --set: the override is named
    with pytest.raises(InputError, match=r"--set memories\.act_sram\.model\)"):
        load_chip("edge_sram", overrides=["memories.act_sram.model=cacti45"])


def test_bad_model_input_is_exit_2_with_file_line_key(tmp_path: Path):
    child = tmp_path / "child.yaml"
    child.write_text(
        "extends: online_edge\nname: x\nmemories:\n  fb_mram:\n    model: cacti45\n"
        "    area_mm2: null\n"
    )
    result = CliRunner().invoke(main, ["chip", "validate", str(child)])
    assert result.exit_code == 2
    assert f"{child}:5: memories.fb_mram.model: model cacti45 sizes sram levels, not mram" in (
        result.output.replace("\n", " ")
    )


def test_simulate_prices_a_sized_level_at_the_models_numbers(tmp_path: Path):
    path = _derived_chip(tmp_path)
    result = CliRunner().invoke(
        main, ["simulate", "--model", "mlp:64-32-10", "--chip", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    fit = cacti45(256 * KB)
    for rule in doc["rules"].values():
        accesses = rule["counts"]["act_sram"]
        reads = sum(
            d["accesses"]
            for phases in accesses.values()
            for directions in phases.values()
            for direction, d in directions.items()
            if direction != "write"
        )
        writes = sum(
            d["accesses"]
            for phases in accesses.values()
            for directions in phases.values()
            for direction, d in directions.items()
            if direction == "write"
        )
        assert reads and writes
        expected = reads * fit.read_energy_pj + writes * fit.write_energy_pj
        assert rule["energy_pj"]["memory_by_level"]["act_sram"] == pytest.approx(expected)
    area = {part["name"]: part for part in doc["chip"]["area"]["parts"]}
    assert area["act_sram"]["mm2"] == fit.area_mm2 and area["act_sram"]["derived"]


def test_a_chip_sweep_over_a_sized_levels_capacity(tmp_path: Path):
    # toy's fbmem, sized by the model: FA reads it 6 times a step (tests/sweeps); a larger fbmem
    # costs 6 × the read energy's rise more, plus its extra leakage over the step
    chip = tmp_path / "toy_sized.yaml"
    chip.write_text(
        f"extends: {TOY}\nname: toy_sized\nmemories:\n  fbmem:\n    model: cacti45\n"
        "    read_energy_pj: null\n    write_energy_pj: null\n"
    )
    workload = tmp_path / "workload.json"
    workload.write_text(json.dumps(build_workload("mlp:4-3-2", batch_size=3)))
    result = CliRunner().invoke(
        main,
        [
            *("sweep", "chip", "--chip", str(chip), "--workload", str(workload)),
            *("--algo", "fa", "--set", "memories.fbmem.size_bytes=64,4096,262144"),
            *("--out", str(tmp_path / "out"), "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    points = json.loads(result.output)["points"]
    energies = [p["rules"]["fa"]["energy_pj"] for p in points]
    assert energies == sorted(energies) and len(set(energies)) == 3
    areas = [p["area_mm2"] for p in points]  # the chip grows by the level's area, nothing else
    toy = load_chip(chip)
    for point, area in zip(points, areas, strict=True):
        size = point["values"]["memories.fbmem.size_bytes"]
        grown = cacti45(size, word_bits=16).area_mm2 - toy.memory("fbmem").area_mm2
        assert area == pytest.approx(toy.area_mm2 + grown)
    first = points[0]["rules"]["fa"]
    for point in points[1:]:
        r = point["rules"]["fa"]
        assert r["accesses"] == first["accesses"] and r["accesses"]["fbmem"]["read"] == 6
        assert r["latency_s"] == first["latency_s"]
        size = point["values"]["memories.fbmem.size_bytes"]
        small, large = cacti45(64, word_bits=16), cacti45(size, word_bits=16)  # 16-bit words
        leakage = (large.leakage_mw - small.leakage_mw) * r["latency_s"] * 1e9  # mW·s → pJ
        delta = 6 * (large.read_energy_pj - small.read_energy_pj) + leakage
        assert r["energy_pj"] - first["energy_pj"] == pytest.approx(delta, rel=1e-9)


# --------------------------------------------------------------------------- area


@pytest.mark.parametrize("name", shipped_chip_names())
def test_every_shipped_level_and_the_macs_have_an_area_and_a_source(name):
    chip = load_chip(name)
    parts = chip.areas()
    assert [p.name for p in parts] == [*(m.name for m in chip.memories), "MACs"]
    for part, level in zip(parts, chip.memories, strict=False):
        assert part.mm2 is not None and part.source.strip(), part.name
        if level.kind == "dram":
            assert part.mm2 == 0 and part.source == DRAM_AREA_SOURCE and not part.derived
        else:
            assert part.mm2 > 0, part.name
    assert parts[-1].mm2 is not None and parts[-1].mm2 > 0
    assert chip.area_mm2 == pytest.approx(sum(p.mm2 or 0 for p in parts))


def test_shipped_areas_by_hand():
    edge = load_chip("edge_sram")
    macs = edge.areas()[-1]
    # 3 units × 256 lanes, each sized for fp32: 768 × (7700 + 4184) µm²
    assert macs.mm2 == pytest.approx(768 * 11884e-6) and macs.source == MAC_AREA_SOURCE
    assert edge.memory("weight_sram").area_mm2 == cacti45(1024 * KB).area_mm2
    gb = edge.memory("global_buffer")  # two 1 MB banks
    assert gb.area_mm2 == pytest.approx(2 * cacti45(1024 * KB).area_mm2)
    # given in the file, with the level's note as source
    online = load_chip("online_edge")
    mram = next(p for p in online.areas() if p.name == "fb_mram")
    assert mram.mm2 == 0.539 and "0.0486 µm²" in mram.source and not mram.derived
    rram = load_chip("rram_cim_mirror")
    assert rram.memory("w_cim").area_mm2 == 0.899  # its own, without the row converters
    assert rram.memory("b_cim").area_mm2 == 0.449  # rram_cim's, inherited
    assert load_chip("df_lnpu").compute_area_mm2 == 15.9


def test_a_level_without_an_area_model_reports_none_and_says_why(tmp_path: Path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: online_edge\nname: x\nmemories:\n  fb_mram: {area_mm2: null}\n")
    chip = load_chip(child)
    part = next(p for p in chip.areas() if p.name == "fb_mram")
    assert part.mm2 is None and "no area model for mram" in part.source
    assert chip.area_mm2 == pytest.approx(load_chip("online_edge").area_mm2 - 0.539)


def test_a_dram_with_an_area_is_refused(tmp_path: Path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: edge_sram\nname: x\nmemories:\n  dram: {area_mm2: 10}\n")
    with pytest.raises(InputError, match=rf"{child}:4: memories\.dram\.area_mm2: off chip"):
        load_chip(child)


def test_simulate_reports_area_and_the_silicon_of_a_rules_own_tensors():
    chip = load_chip("split_cores")
    result = simulate("mlp:64-32-10", chip, "bp,fa")
    assert result.area_mm2 == pytest.approx(chip.area_mm2)
    # BP keeps a mirror of layer 1's W (32 × 10 weights of 8 bits; layer 0 needs none), FA its
    # B of the same shape; each takes the level its plan placed it in
    bp, fa = result.rules["bp"].own_silicon, result.rules["fa"].own_silicon
    assert list(bp) == ["weight_mirror"] and list(fa) == ["feedback_weights"]
    for rule, tensor in (("bp", "weight_mirror"), ("fa", "feedback_weights")):
        (level,) = set(result.rules[rule].placement[tensor].values())
        held = chip.memory(level)
        silicon = result.rules[rule].own_silicon[tensor]
        assert silicon.levels == {level: 32 * 10 * 8}
        assert silicon.area_mm2 == held.area_mm2
        assert silicon.occupied_mm2 == pytest.approx(32 * 10 * 8 / held.size_bits * held.area_mm2)
        assert result.rules[rule].to_dict()["own_silicon"][tensor]["area_mm2"] == held.area_mm2
