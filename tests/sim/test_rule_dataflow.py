"""What dfa, usf, brsf, frsf and kp read and write on chip, counted by hand on the toy chip.

Toy chip (data/toy_chip.yaml): wmem 16-bit words (read 2 pJ, write 3), fbmem 16-bit words
(read 2, write 3), buf 32-bit words (read 4, write 5), interconnect 0.5 pJ/bit, int8 MACs
0.25 pJ; BP mirror mode (mirror in fbmem), feedback in fbmem, 2 samples per weight fetch,
``batch_outer``, ΔW and momentum 8-bit. Every tensor is 8-bit. Counts are (bits, words,
accesses); a fetch rounds its own words up.

MLP 4-3-2 (momentum): layer 0 W 3×4 + 3 biases, layer 1 W 2×3 + 2 biases. Layer 0 sends no
error down, so only layer 1 has a backward phase, a mirror, B or magnitudes: its W is 6
weights, 48 bits (3 fbmem/wmem words), its sign 6 bits (1 word), its 7-bit magnitudes
(``max(fb − 1, 1)``) 42 bits (3 words). Batch n ≤ 2 is one fetch group, so the backward phase
is one fetch: it reads layer 1's output error e₁ (n × 2 × 8 = 16n bits: 1 buf word) and writes
e₀ (n × 3 × 8 = 24n bits: 1 word for n = 1, 2 words for n = 2); the loss also writes e₁ in
the backward phase (16n bits, 1 word). The common update of both layers (W 184 bits read and
written, momentum and ΔW) is BP's and not repeated here.

MLP 4-3-3-2 for DFA: layer 2 (top, n_out = 2) W 2×3, layer 1 W 3×3, layer 0 W 3×4.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.core.resources import CHIPS_DIR
from hwsim.core.rules import parse_rule
from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.counting import AccessCount, count_init, count_step
from hwsim.sim.explain import CAUSES
from hwsim.sim.mapper import make_plan
from hwsim.sim.model_specs import build_workload
from hwsim.sim.simulation import simulate_init, simulate_step

DATA = Path(__file__).parent / "data"
TOY_PATH = DATA / "toy_chip.yaml"
TOY = load_chip(TOY_PATH)
A = AccessCount
NEW_RULES = ("dfa", "usf", "brsf", "frsf", "kp")
DEFAULT_MLP = "mlp:784-256-256-256-256-256-10"


def work(spec: str = "mlp:4-3-2", n: int = 1):
    return workload_from_dict(build_workload(spec, batch_size=n))


def toy(**changes):
    placement = {**TOY.placement, **changes.pop("placement", {})}
    if changes.get("feedback_storage") == "prng":
        placement.pop("feedback_weights")
    return dataclasses.replace(TOY, placement=placement, **changes)


def phase(counts, *phases: str) -> dict:
    """The access counts of the given phases, keyed as the closed form keys them."""
    return {k: v for k, v in counts.accesses.items() if k[2] in phases}


#: The update every rule shares on MLP 4-3-2 (both layers): W read and written (120 + 64 bits,
#: 8 + 4 wmem words), momentum read and written and ΔW read (184 bits, 4 + 2 buf words).
COMMON_UPDATE = {
    ("wmem", "weights", "update", "read"): A(184, 12, 12),
    ("wmem", "weights", "update", "write"): A(184, 12, 12),
    ("buf", "optimizer_state", "update", "read"): A(184, 6, 6),
    ("buf", "optimizer_state", "update", "write"): A(184, 6, 6),
    ("buf", "gradients", "update", "read"): A(184, 6, 6),
}


def error_streams(n: int) -> dict:
    """e₁ read (16n bits, 1 word); the loss's e₁ and layer 1's e₀ written (16n + 24n bits)."""
    writes = 1 + math.ceil(24 * n / 32)  # the loss's word and e₀'s
    return {
        ("buf", "errors", "backward", "read"): A(16 * n, 1, 1),
        ("buf", "errors", "backward", "write"): A(40 * n, writes, writes),
    }


# --------------------------------------------------------------------------------- dfa


@pytest.mark.parametrize("n", [1, 2])
def test_dfa_reads_the_top_error_through_d(n):
    # Every layer l ≥ 1 multiplies the top error e₂ (2 per sample: 16n bits, 1 buf word) by its
    # own D_l of n_out × in_l = 2 × 3 = 6 elements (48 bits, 3 fbmem words): layer 2's D₂ has
    # FA's B₂ shape; layer 1's D₁ replaces FA's 3 × 3 B₁. Both read e₂ (2 fetches × 1 word);
    # the writes are the loss's e₂ (16n bits, 1 word), layer 2's e₁ and layer 1's e₀ (24n bits
    # each: 1 word for n = 1, 2 for n = 2). MACs 2 × 3 per sample per layer: 12n (FA: 6 + 9).
    r = simulate(work("mlp:4-3-3-2", n), TOY, "dfa").rules["dfa"]
    c = r.step.counts
    write_words = 1 + 2 * (1 if n == 1 else 2)
    assert phase(c, "backward") == {
        ("buf", "errors", "backward", "read"): A(2 * 16 * n, 2, 2),
        ("buf", "errors", "backward", "write"): A(16 * n + 2 * 24 * n, write_words, write_words),
        ("fbmem", "feedback_weights", "backward", "read"): A(96, 6, 6),
    }
    assert c.macs_by_phase()["backward"] == 12 * n
    assert c.macs[("backward", "int8")] == 12 * n
    assert r.placement["feedback_weights"] == {"fc2": "fbmem", "fc3": "fbmem"}
    assert not c.interconnect_bits and not c.generated_values
    assert r.feedback_read_bits == 96 and r.weight_transport_bits == 0
    # nothing in the update beyond the common one (W and momentum of 3 layers)
    assert {k[1] for k in phase(c, "update")} == {"weights", "optimizer_state", "gradients"}
    # init: D₁ and D₂ written once (2 × 3 words)
    assert r.init.counts.accesses == {("fbmem", "feedback_weights", "init", "write"): A(96, 6, 6)}


def test_dfa_with_regenerated_d_stores_nothing():
    chip = toy(feedback_storage="prng", prng_energy_per_value_pj=0.5)
    r = simulate(work("mlp:4-3-3-2", 2), chip, "dfa").rules["dfa"]
    # 6 values of D₁ and 6 of D₂ regenerated by the one backward fetch of each layer
    assert r.step.counts.generated_values == {"backward": 12}
    assert "feedback_weights" not in r.placement
    assert not r.init.counts.accesses and not r.init.counts.generated_values


def _overlaps(timeline, layer_a: int, layer_b: int) -> bool:
    """Whether a backward busy interval of one layer overlaps one of another."""
    first = [e for e in timeline if e.phase == "backward" and e.layer == layer_a]
    second = [e for e in timeline if e.phase == "backward" and e.layer == layer_b]
    return any(a.start_cycle < b.end_cycle and b.start_cycle < a.end_cycle
               for a in first for b in second)  # fmt: skip


def test_dfa_error_unit_works_on_all_layers_at_once():
    # DFA's layers wait only for the loss: layer 1's loads run while layer 2's are under way.
    # FA's layer 1 needs the error layer 2 sends down: strictly after it. (The top layer's
    # intervals include the loss's write of e₂, which precedes both in either rule.)
    wl = work("mlp:4-3-3-2", 2)
    dfa = simulate(wl, TOY, "dfa", timeline=True).rules["dfa"].step.timeline
    fa = simulate(wl, TOY, "fa", timeline=True).rules["fa"].step.timeline
    assert dfa is not None and fa is not None
    assert _overlaps(dfa, 1, 2)
    assert not _overlaps(fa, 1, 2)
    # one MAC array: the error unit's MAC intervals never overlap one another
    macs = sorted((e.start_cycle, e.end_cycle) for e in dfa if e.resource == "error")
    assert len(macs) == 2
    assert macs[0][1] <= macs[1][0]


# --------------------------------------------------------------------------------- usf


@pytest.mark.parametrize("n", [1, 2])
def test_usf_transport_reads_w_whole_and_carries_one_bit_per_weight(n):
    # Transport mode: W₁ is read at its level in full (48 bits, 3 wmem words, direction
    # transport) and only its sign crosses the interconnect: 6 bits (BP: 48). No B, no
    # magnitudes (uSF's rms(W) is one scalar per layer: not counted), no init.
    r = simulate(work("mlp:4-3-2", n), toy(bp_weight_access="transport"), "usf").rules["usf"]
    c = r.step.counts
    assert phase(c, "backward") == {
        **error_streams(n),
        ("wmem", "weights", "backward", "transport"): A(48, 3, 3),
    }
    assert c.interconnect_bits == {("weights", "backward"): 6}
    assert r.weight_transport_bits == 6
    assert phase(c, "update") == COMMON_UPDATE
    # backward MACs ±1 × int8 errors: promote(int1, int8) = int8, 6 per sample
    assert c.macs[("backward", "int8")] == 6 * n
    assert "feedback_weights" not in r.placement and "weight_mirror" not in r.placement
    assert not r.init.counts.accesses


@pytest.mark.parametrize("n", [1, 2])
def test_usf_mirror_keeps_a_one_bit_sign_mirror(n):
    # Mirror mode: a 1-bit sign mirror of layer 1 (6 bits, 1 fbmem word) is read in backward,
    # rewritten after every update (1 word, 6 bits over the interconnect) and first copied at
    # init (W₁ read, 48 bits = 3 wmem words; mirror written, 1 word, 6 bits over the link).
    r = simulate(work("mlp:4-3-2", n), TOY, "usf").rules["usf"]
    c = r.step.counts
    assert phase(c, "backward") == {
        **error_streams(n),
        ("fbmem", "weight_mirror", "backward", "read"): A(6, 1, 1),
    }
    assert phase(c, "update") == {
        **COMMON_UPDATE,
        ("fbmem", "weight_mirror", "update", "write"): A(6, 1, 1),
    }
    assert c.interconnect_bits == {("weight_mirror", "update"): 6}
    assert r.sync_write_bits == 6 and r.weight_transport_bits == 0
    assert r.init.counts.accesses == {
        ("wmem", "weights", "init", "read"): A(48, 3, 3),
        ("fbmem", "weight_mirror", "init", "write"): A(6, 1, 1),
    }
    assert r.init.counts.interconnect_bits == {("weight_mirror", "init"): 6}


def test_usf_mirror_synchronized_through_dram():
    # via dram: the sign (6 bits) is written to dram (1 word of 64) and read back, then written
    # into the mirror; both legs cross the interconnect (12 bits)
    r = simulate(work(), toy(mirror_sync_via="dram"), "usf").rules["usf"]
    c = r.step.counts
    assert c.accesses[("dram", "weight_mirror", "update", "write")] == A(6, 1, 1)
    assert c.accesses[("dram", "weight_mirror", "update", "read")] == A(6, 1, 1)
    assert c.accesses[("fbmem", "weight_mirror", "update", "write")] == A(6, 1, 1)
    assert c.interconnect_bits == {("weight_mirror", "update"): 12}


# --------------------------------------------------------------------------------- frsf, brsf


@pytest.mark.parametrize("n", [1, 2])
def test_frsf_reads_sign_mirror_and_fixed_magnitudes(n):
    # sign mirror (6 bits, 1 word) + fixed 7-bit magnitudes (42 bits, 3 fbmem words) read per
    # fetch; the magnitudes are written once at init, never in a step.
    r = simulate(work("mlp:4-3-2", n), TOY, "frsf").rules["frsf"]
    c = r.step.counts
    assert phase(c, "backward") == {
        **error_streams(n),
        ("fbmem", "weight_mirror", "backward", "read"): A(6, 1, 1),
        ("fbmem", "feedback_weights", "backward", "read"): A(42, 3, 3),
    }
    assert phase(c, "update") == {
        **COMMON_UPDATE,
        ("fbmem", "weight_mirror", "update", "write"): A(6, 1, 1),
    }
    assert not c.generated_values
    assert c.macs[("backward", "int8")] == 6 * n  # promote(int8 feedback, int8 errors)
    assert r.init.counts.accesses == {
        ("wmem", "weights", "init", "read"): A(48, 3, 3),
        ("fbmem", "weight_mirror", "init", "write"): A(6, 1, 1),
        ("fbmem", "feedback_weights", "init", "write"): A(42, 3, 3),
    }
    assert not r.init.counts.generated_values


def test_frsf_transport_carries_the_sign_and_reads_stored_magnitudes():
    r = simulate(work("mlp:4-3-2", 2), toy(bp_weight_access="transport"), "frsf").rules["frsf"]
    c = r.step.counts
    assert c.accesses[("wmem", "weights", "backward", "transport")] == A(48, 3, 3)
    assert c.accesses[("fbmem", "feedback_weights", "backward", "read")] == A(42, 3, 3)
    assert c.interconnect_bits == {("weights", "backward"): 6}
    assert r.init.counts.accesses == {("fbmem", "feedback_weights", "init", "write"): A(42, 3, 3)}


@pytest.mark.parametrize("n", [1, 2])
def test_brsf_stored_redraws_its_magnitudes_every_step(n):
    # As frSF, plus once per step: 6 new magnitudes generated (0.5 pJ each) and written (42
    # bits, 3 fbmem words, phase update); the first draw is generated and written at init.
    chip = toy(prng_energy_per_value_pj=0.5)
    r = simulate(work("mlp:4-3-2", n), chip, "brsf").rules["brsf"]
    c = r.step.counts
    assert phase(c, "backward") == {
        **error_streams(n),
        ("fbmem", "weight_mirror", "backward", "read"): A(6, 1, 1),
        ("fbmem", "feedback_weights", "backward", "read"): A(42, 3, 3),
    }
    assert phase(c, "update") == {
        **COMMON_UPDATE,
        ("fbmem", "weight_mirror", "update", "write"): A(6, 1, 1),
        ("fbmem", "feedback_weights", "update", "write"): A(42, 3, 3),
    }
    assert c.generated_values == {"update": 6}
    assert r.step.energy.breakdown_pj["feedback_generation"] == 3.0
    assert r.init.counts.generated_values == {"init": 6}
    assert r.init.counts.accesses[("fbmem", "feedback_weights", "init", "write")] == A(42, 3, 3)


def test_brsf_redraws_once_per_step_even_when_fused():
    # fused: W is updated after each of the 2 samples, the magnitudes still once per batch
    chip = toy(prng_energy_per_value_pj=0.5, update="fused")
    c = simulate(work("mlp:4-3-2", 2), chip, "brsf").rules["brsf"].step.counts
    assert c.generated_values == {"update": 6}
    assert c.accesses[("fbmem", "feedback_weights", "update", "write")] == A(42, 3, 3)
    assert c.accesses[("fbmem", "weight_mirror", "update", "write")] == A(12, 2, 2)


@pytest.mark.parametrize("n", [1, 2])
def test_brsf_prng_regenerates_magnitudes_per_fetch_and_writes_none(n):
    # magnitudes regenerated from a new seed per batch: 6 values per backward fetch, nothing
    # stored, nothing written in the update, nothing generated at init (only the sign mirror)
    chip = toy(feedback_storage="prng", prng_energy_per_value_pj=0.5)
    r = simulate(work("mlp:4-3-2", n), chip, "brsf").rules["brsf"]
    c = r.step.counts
    assert phase(c, "backward") == {
        **error_streams(n),
        ("fbmem", "weight_mirror", "backward", "read"): A(6, 1, 1),
    }
    assert c.generated_values == {"backward": 6}
    assert phase(c, "update") == {
        **COMMON_UPDATE,
        ("fbmem", "weight_mirror", "update", "write"): A(6, 1, 1),
    }
    assert "feedback_weights" not in r.placement
    assert not r.init.counts.generated_values
    assert set(r.init.counts.accesses) == {
        ("wmem", "weights", "init", "read"),
        ("fbmem", "weight_mirror", "init", "write"),
    }


# --------------------------------------------------------------------------------- kp


@pytest.mark.parametrize("n", [1, 2])
def test_kp_accumulate_writes_the_update_into_b_once_per_step(n):
    # backward: B₁ read as FA's (48 bits, 3 words). Update: W's step (6 elements × 8-bit
    # gradient_bits = 48 bits) crosses the interconnect to fbmem, B₁ read and written (3 + 3
    # words), 6 MACs (promote(int8, int8)) beside the common 46; init writes B₀ (3 words).
    r = simulate(work("mlp:4-3-2", n), TOY, "kp").rules["kp"]
    c = r.step.counts
    assert phase(c, "backward") == {
        **error_streams(n),
        ("fbmem", "feedback_weights", "backward", "read"): A(48, 3, 3),
    }
    assert phase(c, "update") == {
        **COMMON_UPDATE,
        ("fbmem", "feedback_weights", "update", "read"): A(48, 3, 3),
        ("fbmem", "feedback_weights", "update", "write"): A(48, 3, 3),
    }
    assert c.interconnect_bits == {("feedback_weights", "update"): 48}
    assert c.macs[("update", "int8")] == 46 + 6
    assert "weight_mirror" not in r.placement  # never a copy of W
    assert r.feedback_read_bits == 48  # the backward reads only
    assert r.init.counts.accesses == {("fbmem", "feedback_weights", "init", "write"): A(48, 3, 3)}


def test_kp_fused_updates_b_per_sample():
    # 2 samples, each its own fetch (per_sample) and its own update: B read per sample in
    # backward (2 × 3 words) and read and written per sample in the update, 2 × 48 link bits,
    # 2 × (46 + 6) update MACs; no ΔW.
    r = simulate(work("mlp:4-3-2", 2), toy(update="fused"), "kp").rules["kp"]
    c = r.step.counts
    assert c.accesses[("fbmem", "feedback_weights", "backward", "read")] == A(96, 6, 6)
    assert c.accesses[("fbmem", "feedback_weights", "update", "read")] == A(96, 6, 6)
    assert c.accesses[("fbmem", "feedback_weights", "update", "write")] == A(96, 6, 6)
    assert c.interconnect_bits == {("feedback_weights", "update"): 96}
    assert c.macs[("update", "int8")] == 2 * 52
    assert not [k for k in c.accesses if k[1] == "gradients"]


def test_kp_gap_to_bp_names_the_feedback_update():
    # BP (mirror) − KP on the toy: KP's B update costs 3 reads × 2 + 3 writes × 3 + 48 link
    # bits × 0.5 + 6 MACs × 0.25 = 40.5 pJ, all of it in feedback_update (negative: the rule's)
    r = simulate(work("mlp:4-3-2", 2), TOY, "bp,kp")
    gap = r.gaps_to_bp["kp"].energy
    assert gap.causes_pj["feedback_update"] == pytest.approx(-40.5)
    assert gap.causes_pj["mac_width"] == 0.0 and gap.causes_pj["error_macs"] == 0.0


def test_dfa_gap_to_bp_names_the_backward_mac_count():
    # BP's backward MACs 6 + 9 per sample, DFA's 6 + 6: 3 × 2 samples × 0.25 pJ = 1.5 pJ of
    # error_macs, none of it MAC width (both int8)
    r = simulate(work("mlp:4-3-3-2", 2), TOY, "bp,dfa")
    gap = r.gaps_to_bp["dfa"].energy
    assert gap.causes_pj["error_macs"] == pytest.approx(1.5)
    assert gap.causes_pj["mac_width"] == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("rule", "storage"), [("kp", "prng"), ("kp", "rom"), ("brsf", "rom")]
)  # fmt: skip
def test_storage_that_cannot_hold_the_feedback_is_refused(rule, storage):
    changes: dict = {"feedback_storage": storage}
    if storage == "prng":
        changes["prng_energy_per_value_pj"] = 0.5
    else:
        changes["placement"] = {"feedback_weights": "rom"}
    with pytest.raises(InputError) as err:
        simulate(work(), toy(**changes), rule)
    text = str(err.value)
    line = TOY.lines["training.feedback_storage"]
    assert f"{TOY_PATH}:{line}: training.feedback_storage" in text
    assert repr(rule) in text and storage in text


def test_unsupported_reason_says_which_rules_a_chip_cannot_run():
    from hwsim.sim import unsupported_reason

    for path in _shipped():
        chip = load_chip(path)
        for spec in ("bp", "fa", "ifa", *NEW_RULES):
            reason = unsupported_reason(chip, spec)
            assert (reason is None) == (spec in ("bp", "fa", "ifa", *_rules_for(chip))), spec
            if reason and chip.has_cim:
                assert f"rule {spec!r} is not modelled on a chip with compute-in-memory" in reason
            elif reason:
                assert "training.feedback_storage" in reason and "'kp'" in reason
    rom = toy(feedback_storage="rom", placement={"feedback_weights": "rom"})
    assert unsupported_reason(rom, "brsf") is not None
    assert unsupported_reason(rom, "frsf") is None


@pytest.mark.parametrize("rule", ["dfa", "frsf", "usf"])
def test_fixed_feedback_in_rom_works(rule):
    chip = toy(feedback_storage="rom", placement={"feedback_weights": "rom"})
    r = simulate(work("mlp:4-3-3-2", 2), chip, rule).rules[rule]
    assert not [k for k in r.init.counts.accesses if k[1] == "feedback_weights"]
    if rule != "usf":
        assert set(r.placement["feedback_weights"].values()) == {"rom"}


# --------------------------------------------------------------------------------- every chip


def _shipped():
    return sorted(CHIPS_DIR.glob("*.yaml"))


def _rules_for(chip) -> list[str]:
    """The new rules a chip can run: KP needs a writable B (no prng/rom storage); a chip with
    compute-in-memory arrays runs DFA of them (the others' error pass is not mapped on arrays)."""
    if chip.has_cim:
        return ["dfa"]
    return [r for r in NEW_RULES if r != "kp" or chip.feedback_storage in ("sram", "dram")]


@pytest.mark.parametrize("model", [DEFAULT_MLP, "resnet18"])
def test_simulation_reproduces_the_closed_form_on_every_shipped_chip(model):
    wl = workload_from_dict(build_workload(model))  # the default batch, 64
    for path in _shipped():
        chip = load_chip(path)
        for spec in _rules_for(chip):
            plan = make_plan(wl, chip, parse_rule(spec), wl.batch_size)
            assert simulate_step(wl, chip, plan).counts == count_step(wl, chip, plan), spec
            assert simulate_init(wl, chip, plan).counts == count_init(wl, chip, plan), spec


def test_causes_sum_exactly_for_every_new_rule_on_every_shipped_chip():
    for path in _shipped():
        chip = load_chip(path)
        rules = _rules_for(chip)
        r = simulate(DEFAULT_MLP, chip, ["bp", *rules])
        for spec in rules:
            e = r.gaps_to_bp[spec].energy
            assert list(e.causes_pj) == list(CAUSES)
            scale = max(abs(e.bp_pj), abs(e.rule_pj))
            assert math.fsum(e.causes_pj.values()) == pytest.approx(
                e.difference_pj, abs=1e-9 * scale
            )
            assert math.fsum(e.net_causes_pj.values()) == pytest.approx(
                e.difference_pj, abs=1e-9 * scale
            )
        if "kp" in rules:
            assert abs(r.gaps_to_bp["kp"].energy.causes_pj["feedback_update"]) > 0
        else:
            where = r"kind: rule 'kp' is not modelled" if chip.has_cim else r"feedback_storage"
            with pytest.raises(InputError, match=where):
                simulate(DEFAULT_MLP, chip, "kp")


def test_cli_simulates_every_rule():
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--algo",
            "bp,fa,ifa,dfa,usf,brsf,frsf,kp",
            "--chip",
            str(TOY_PATH),
            "--model",
            "mlp:4-3-3-2",
            "--batch-size",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert list(doc["rules"]) == ["bp", "fa", "ifa", "dfa", "usf", "brsf", "frsf", "kp"]
    for spec in NEW_RULES:
        gap = doc["rules"][spec]["gap_to_bp"]["energy_pj"]
        assert set(gap["causes"]) == set(CAUSES)
    assert doc["rules"]["usf"]["sync_write_bits"] == 6 + 9  # sign mirrors of layers 1 and 2


def test_a_gap_saved_before_the_new_causes_still_loads_and_renders():
    # a gap_to_bp block as runs saved it before feedback_update, error_reads and error_macs
    from hwsim.render import compare_run, report
    from hwsim.sim.explain import NEW_CAUSES

    doc = simulate(work(), TOY, "bp,fa").to_dict()["rules"]["fa"]["gap_to_bp"]
    for cause in NEW_CAUSES:
        del doc["energy_pj"]["causes"][cause]
    shape = compare_run._RULE["gap_to_bp?"]
    compare_run.check_shape(doc, shape, "summary.json", "gap_to_bp")
    cleaned = report._cleaned(doc["energy_pj"])
    assert set(cleaned) == set(CAUSES) and all(cleaned[c] == 0.0 for c in NEW_CAUSES)
    # a saved run lacking an old cause is still refused
    del doc["energy_pj"]["causes"]["mirror_sync"]
    with pytest.raises(InputError, match="mirror_sync"):
        compare_run.check_shape(doc, shape, "summary.json", "gap_to_bp")
