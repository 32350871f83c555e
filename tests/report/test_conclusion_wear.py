"""The conclusion's lifetime sentence, on synthetic summaries whose answers are worked out by
hand: measured, upper bound, a digital non-volatile level, a rule whose step writes no cell."""

from __future__ import annotations

from typing import Any

from hwsim.render.conclusion import conclusion


def tensor(level: str, name: str, per_step: float, measured: bool) -> dict[str, Any]:
    """A stored tensor in a level of endurance 1e8, in a run of 1,000 steps."""
    steps = 1e8 / per_step if per_step else None
    return {
        "level": level,
        "technology": "rram" if level == "arrays" else "mram",
        "tensor": name,
        "cells": 1000,
        "writes_per_step": per_step * 1000,
        "mean_writes_per_cell_per_step": per_step,
        "max_writes_per_cell_per_step": per_step,
        "max_layer": "fc2",
        "measured": measured,
        "endurance_cycles": 1e8,
        "steps_to_endurance": steps,
        "runs_to_endurance": None if steps is None else steps / 1000,
    }


def rule(*tensors: dict[str, Any]) -> dict[str, Any]:
    """A rule block (accuracy and cost as in test_conclusion.py) with its wear."""
    lasting = [t for t in tensors if t["steps_to_endurance"] is not None]
    first = min(lasting, key=lambda t: t["steps_to_endurance"]) if lasting else None
    return {
        "status": "completed",
        "test_accuracy": {"final": 0.9, "final_std": 0.01, "per_seed_final": [0.9] * 3},
        "energy_pj": {"total": 1e6},
        "latency_s": 1e-3,
        "wear": {
            "measured": any(t["measured"] for t in tensors),
            "tensors": list(tensors),
            "first_failure": None
            if first is None
            else {
                "level": first["level"],
                "tensor": first["tensor"],
                "layer": first["max_layer"],
                "steps": first["steps_to_endurance"],
                "runs": first["runs_to_endurance"],
            },
        },
    }


KINDS = {"cim_chip": {"arrays": "cim", "nv_buffer": "sram", "sram": "sram"}}


def summary(rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "seeds": [0, 1, 2],
        "chip_order": ["cim_chip"],
        "rule_order": list(rules),
        "chips": {"cim_chip": {"rules": rules}},
    }


def test_measured_upper_bound_and_never_written_rules_are_told_apart() -> None:
    text = conclusion(
        summary(
            {
                # measured: 0.02 changes per update → 1e8 / 0.02 = 5e9 steps = 5,000,000 runs
                "bp": rule(tensor("arrays", "weights", 0.02, True)),
                # upper bound: every update → 1e8 steps = 1e5 runs
                "fa": rule(
                    tensor("arrays", "weights", 1.0, False),
                    tensor("arrays", "feedback_weights", 0.0, False),
                ),
                # nothing of dfa's is programmed in a step
                "dfa": rule(tensor("arrays", "feedback_weights", 0.0, False)),
            }
        ),
        KINDS,
    )
    assert len(text) == 3
    assert text[-1] == (
        "On cim_chip, bp's most-written cell (weights of fc2 in arrays, rram) reaches its "
        "endurance after 5,000,000 training runs (5e+09 steps), fa's after 100,000 training runs "
        "(1e+08 steps); bp: from the measured update sparsity; fa: an upper bound (no "
        "measured update sparsity: every update programs every cell); dfa: no cell programmed "
        "by a step."
    )


def test_equal_lifetimes_are_grouped_and_a_digital_level_is_exact() -> None:
    same = tensor("arrays", "weights", 1.0, False)
    digital = tensor("nv_buffer", "optimizer_state", 4.0, False)  # 2.5e7 steps = 25,000 runs
    rules = {"bp": rule(same), "fa": rule(same), "ifa": rule(same, digital)}
    text = conclusion(summary(rules), KINDS)
    assert text[-1] == (
        "On cim_chip, bp's and fa's most-written cells (weights of fc2 in arrays, rram) reach "
        "their endurance after 100,000 training runs (1e+08 steps), ifa's "
        "(optimizer_state of fc2 in nv_buffer, mram) after 25,000 training runs (2.5e+07 "
        "steps); bp and fa: an upper bound (no measured update sparsity: every update programs "
        "every cell); ifa: exact (every write rewrites the tensor's words)."
    )


def test_no_sentence_without_non_volatile_levels() -> None:
    plain = rule(tensor("arrays", "weights", 1.0, False))
    plain["wear"] = None
    assert len(conclusion(summary({"bp": plain}))) == 2
