"""PRNG against stored feedback: the DRAM accesses saved are exactly the feedback's own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hwsim.sim.chip import load_chip
from hwsim.sim.feedback_storage import prng_against_stored, stored_variant
from hwsim.sim.model_specs import build_workload

TOY = load_chip(Path(__file__).parent / "data" / "toy_chip.yaml")


def toy_prng(**training):
    training = {
        "feedback_storage": "prng",
        "prng_energy_per_value_pj": 0.1,
        "loop_order": "batch_outer",
        "samples_per_weight_fetch": 2,
        **training,
    }
    return dataclasses.replace(TOY, **training)


def test_stored_variant_keeps_feedback_in_dram_and_nothing_else_changes():
    chip = toy_prng()
    stored = stored_variant(chip, "dram")
    assert (stored.feedback_storage, stored.placement["feedback_weights"]) == ("dram", "dram")
    assert {k: v for k, v in stored.placement.items() if k != "feedback_weights"} == {
        k: v for k, v in chip.placement.items() if k != "feedback_weights"
    }


def test_regenerating_saves_exactly_the_feedback_reads_of_a_step():
    # MLP 4-3-2, batch 3, 8-bit B. Only layer 1 sends an error down, so only it has a B: 2×3
    # elements × 8 bits = 48 bits = one 64-bit DRAM word = one burst (2 words) per fetch.
    # batch_outer with 2 samples per fetch: groups of 2 + 1 → B is fetched twice per step,
    # 2 DRAM accesses. Nothing else moves differently (B's init write is not per step).
    workload = build_workload("mlp:4-3-2", batch_size=3)
    (saving,) = prng_against_stored(workload, toy_prng(), "bp,fa")
    assert saving.rule == "fa"
    assert saving.level == "dram"
    assert saving.stored_feedback_accesses == 2
    assert saving.stored_accesses - saving.prng_accesses == 2
    assert saving.reduction == saving.prng_accesses / saving.stored_accesses - 1
    assert saving.to_dict()["reduction"] < 0


def test_one_fetch_per_step_when_the_whole_batch_shares_it():
    workload = build_workload("mlp:4-3-2", batch_size=3)
    (saving,) = prng_against_stored(workload, toy_prng(samples_per_weight_fetch=3), "fa")
    assert saving.stored_accesses - saving.prng_accesses == 1


def test_chips_that_store_their_feedback_or_rules_without_one_have_nothing_to_compare():
    workload = build_workload("mlp:4-3-2", batch_size=3)
    assert prng_against_stored(workload, TOY, "fa") == []  # B stored on chip already
    assert prng_against_stored(workload, toy_prng(), "bp") == []  # BP keeps no B
    no_dram = dataclasses.replace(
        toy_prng(), memories=tuple(m for m in TOY.memories if m.kind != "dram")
    )
    assert prng_against_stored(workload, no_dram, "fa") == []


def test_simulate_cli_states_the_saving_on_prng_chips():
    import json

    from click.testing import CliRunner

    from hwsim.cli import main

    args = ["simulate", "--chip", "df_lnpu", "--model", "mlp:784-256-10", "--algo", "bp,fa,dfa"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    expected = prng_against_stored(
        build_workload("mlp:784-256-10"), load_chip("df_lnpu"), "bp,fa,dfa"
    )
    assert document["prng_against_stored"] == [s.to_dict() for s in expected]
    assert [s.rule for s in expected] == ["fa", "dfa"]
    text = CliRunner().invoke(main, args).output
    fa = expected[0]
    assert (
        f"PRNG against feedback stored in dram: DRAM accesses per step fa "
        f"{100 * fa.reduction:+.2f} % ({fa.stored_accesses:,} → {fa.prng_accesses:,})" in text
    )
    plain = CliRunner().invoke(main, ["simulate", "--model", "mlp:784-256-10", "--json"])
    assert "prng_against_stored" not in json.loads(plain.output)  # edge_sram stores B
