"""The report's opening conclusion, on synthetic summaries whose answers are worked out by hand."""

from __future__ import annotations

from typing import Any

from hwsim.render.conclusion import conclusion, within_spread


def rule(
    final: float | None,
    std: float | None,
    energy_uj: float,
    latency_ms: float,
    *,
    seeds: int = 3,
    status: str = "completed",
) -> dict[str, Any]:
    return {
        "status": status,
        "test_accuracy": {
            "final": final,
            "final_std": std,
            "per_seed_final": [final] * seeds,
        },
        "energy_pj": {"total": energy_uj * 1e6},
        "latency_s": latency_ms * 1e-3,
    }


def summary(chips: dict[str, dict[str, dict[str, Any]]], seeds: int = 3) -> dict[str, Any]:
    first = next(iter(chips.values()))
    return {
        "seeds": list(range(seeds)),
        "chip_order": list(chips),
        "rule_order": list(first),
        "chips": {c: {"rules": rules} for c, rules in chips.items()},
    }


DEFAULT = {
    "bp": rule(0.920, 0.012, 751, 7.61),
    "fa": rule(0.659, 0.097, 661, 7.61),
    "ifa": rule(0.909, 0.009, 661, 7.61),
}


def test_default_comparison_within_spread_and_energy_saving():
    text = conclusion(summary({"split_cores": DEFAULT}))
    assert len(text) == 2
    acc, cost = text
    # 0.920 − 0.909 = 1.1 points ≤ the larger std (1.2 points): no winner declared
    assert "no rule wins on test accuracy (mean ± sample std over 3 seeds)" in acc
    assert "bp (0.920 ± 0.012) and ifa (0.909 ± 0.009) are within the seed spread" in acc
    assert "(1.1 points apart)" in acc
    # 0.920 − 0.659 = 26.1 points
    assert "fa (0.659 ± 0.097) is 26.1 points below bp" in acc
    # 1 − 661/751 = 0.1198… → 12 %
    assert "fa and ifa are cheapest on energy per step at 661 µJ, 12% below bp (751 µJ)" in cost
    assert "latency per step is the same for every rule (7.61 ms)" in cost


def test_clear_winner_beyond_the_spread():
    rules = {"bp": rule(0.95, 0.01, 751, 8.0), "fa": rule(0.80, 0.02, 661, 8.0)}
    (acc, _) = conclusion(summary({"c": rules}))
    # 15 points apart, stds at most 2 points
    assert acc.startswith("On c, bp learns best: 0.950 ± 0.010 test accuracy")
    assert "15.0 points above fa (0.800 ± 0.020)" in acc
    assert "within the seed spread" not in acc


def test_one_seed_never_shows_a_spread():
    rules = {
        "bp": rule(0.93, None, 751, 8.0, seeds=1),
        "ifa": rule(0.91, None, 661, 8.0, seeds=1),
    }
    text = " ".join(conclusion(summary({"c": rules}, seeds=1)))
    assert "1 seed, so no spread was measured" in text
    assert "±" not in text
    # one seed: no spread to hide behind, so the 2.0-point difference names a winner, with care
    assert "bp learns best: 0.930 test accuracy" in text
    assert "2.0 points above ifa (0.910)" in text
    assert "with one seed, other seeds may not confirm these gaps" in text


def test_exact_tie_with_one_seed():
    rules = {"fa": rule(0.9, None, 600, 8.0, seeds=1), "ifa": rule(0.9, None, 600, 8.0, seeds=1)}
    acc, cost = conclusion(summary({"c": rules}, seeds=1))
    assert "no rule wins on test accuracy" in acc and "fa (0.900) and ifa (0.900) tie" in acc
    assert "energy per step is the same for every rule (600 µJ)" in cost


def test_a_single_rule():
    acc, cost = conclusion(summary({"c": {"ifa": rule(0.909, 0.009, 661, 7.61)}}))
    assert "ifa reaches 0.909 ± 0.009 test accuracy (mean ± sample std over 3 seeds)" in acc
    assert "the only rule compared" in acc
    assert cost == "One step costs ifa 661 µJ and 7.61 ms on c."


def test_without_bp_the_saving_is_against_the_most_expensive_rule():
    rules = {"fa": rule(0.70, 0.05, 600, 8.0), "ifa": rule(0.90, 0.01, 700, 6.0)}
    acc, cost = conclusion(summary({"c": rules}))
    assert "ifa learns best" in acc and "20.0 points above fa" in acc
    # 1 − 600/700 = 0.1428… → 14 %; 1 − 6/8 = 25 %
    assert "fa is cheapest on energy per step at 600 µJ, 14% below ifa (700 µJ)" in cost
    assert "ifa is fastest on latency per step at 6.00 ms, 25% below fa (8.00 ms)" in cost
    assert "bp" not in " ".join(conclusion(summary({"c": rules})))


def test_diverged_rule_is_left_out_of_the_ranking_and_named():
    rules = {
        "bp": rule(0.92, 0.01, 751, 8.0),
        "kp": rule(0.95, 0.01, 669, 8.1, status="diverged"),
        "fa": rule(0.66, 0.1, 661, 8.0, status="partly-diverged"),
    }
    acc, cost = conclusion(summary({"c": rules}))
    assert "bp learns best" in acc  # kp's higher number does not count
    assert "kp diverged on every seed and is left out of the ranking" in acc
    assert "fa diverged on some seeds" in acc
    assert "fa is cheapest" in cost


def test_latency_differs_and_dfa_is_fastest():
    rules = {"bp": rule(0.92, 0.01, 751, 8.0), "dfa": rule(0.76, 0.02, 582, 6.3)}
    _, cost = conclusion(summary({"c": rules}))
    # 1 − 582/751 = 0.2250… → 23 %; 1 − 6.3/8 = 0.2125 → 21 %
    assert "dfa is cheapest on energy per step at 582 µJ, 23% below bp (751 µJ)" in cost
    assert "dfa is fastest on latency per step at 6.30 ms, 21% below bp (8.00 ms)" in cost


def test_several_chips_name_where_weight_transport_costs_most():
    chips = {
        "a": DEFAULT,
        "b": {
            "bp": rule(0.920, 0.012, 1000, 5.0),
            "fa": rule(0.659, 0.097, 990, 5.0),
            "ifa": rule(0.909, 0.009, 995, 5.0),
        },
        "d": {
            "bp": rule(0.920, 0.012, 500, 5.0),
            "fa": rule(0.659, 0.097, 400, 5.0),
            "ifa": rule(0.909, 0.009, 400, 5.0),
        },
    }
    text = conclusion(summary(chips))
    assert len(text) == 3
    assert text[0].startswith("On a (the first of 3 chips), no rule wins")
    # d: 500/400 − 1 = 25 %; a: 751/661 − 1 = 13.6 % → 14 %; b: 1000/990 − 1 = 1.01 % → 1.0 %
    assert text[2] == (
        "Of the 3 chips, d makes BP's weight transport costliest: BP uses 25% more energy per "
        "step than fa there, against 14% on a, 1.0% on b."
    )


def test_several_chips_without_bp_say_nothing_about_transport():
    rules = {"fa": rule(0.7, 0.05, 600, 8.0), "ifa": rule(0.9, 0.01, 700, 6.0)}
    assert len(conclusion(summary({"a": rules, "b": rules}))) == 2


def test_within_spread_uses_the_larger_std():
    a = rule(0.90, 0.01, 1, 1)
    assert within_spread(a, rule(0.885, 0.02, 1, 1))  # 1.5 points ≤ 2 points
    assert not within_spread(a, rule(0.875, 0.02, 1, 1))  # 2.5 points > 2 points
    assert not within_spread(rule(0.9, None, 1, 1), rule(0.899, None, 1, 1))
    assert within_spread(rule(0.9, None, 1, 1), rule(0.9, None, 1, 1))


def test_one_seed_with_a_zero_std_from_an_old_summary_shows_no_spread():
    rules = {
        "bp": rule(0.93, 0.0, 751, 8.0, seeds=1),
        "ifa": rule(0.93, 0.0, 661, 8.0, seeds=1),
    }
    acc, _ = conclusion(summary({"c": rules}, seeds=1))
    assert "±" not in acc
    assert "bp (0.930) and ifa (0.930) tie" in acc


def with_dram(block: dict[str, Any], dram_uj: float, tensors: dict[str, float]) -> dict[str, Any]:
    """``block`` with ``dram_uj`` of its energy in the level ``dram``, split over ``tensors``
    (µJ each, read accesses), the rest in ``sram``."""
    total = block["energy_pj"]["total"]
    block = dict(block)
    block["energy_pj"] = {
        "total": total,
        "memory_by_level": {"sram": total - dram_uj * 1e6 - 1.0, "dram": dram_uj * 1e6},
    }
    block["counts"] = {
        "dram": {
            t: {"update": {"read": {"bits": 1, "energy_pj": v * 1e6}}} for t, v in tensors.items()
        },
        "sram": {"weights": {"forward": {"read": {"bits": 1, "energy_pj": 1.0}}}},
    }
    return block


KINDS = {"c": {"sram": "sram", "dram": "dram"}}


def test_dram_share_of_a_step_on_the_first_chip():
    rules = {
        # 388 of 751 µJ = 51.66 % → 52 %; gradients 302 of 388 µJ = 77.8 % → 78 %
        "bp": with_dram(DEFAULT["bp"], 388, {"gradients": 302, "weight_mirror": 86}),
        # 302 of 661 µJ = 45.69 % → 46 %, all of it gradients
        "fa": with_dram(DEFAULT["fa"], 302, {"gradients": 302}),
        "ifa": with_dram(DEFAULT["ifa"], 302, {"gradients": 302}),
    }
    text = conclusion(summary({"c": rules}), KINDS)
    assert text[2] == (
        "On c, DRAM takes 52% of bp's, 46% of fa's and ifa's energy per step; gradients take "
        "78% of bp's, all of fa's and ifa's DRAM energy."
    )
    # without the chip's memory kinds, or on a chip without DRAM, no such sentence
    assert len(conclusion(summary({"c": rules}))) == 2
    assert len(conclusion(summary({"c": rules}), {"c": {"sram": "sram"}})) == 2


def test_a_chip_whose_dram_is_never_touched():
    rules = {r: with_dram(b, 0, {}) for r, b in DEFAULT.items()}
    assert conclusion(summary({"c": rules}), KINDS)[2] == "On c, no step energy goes to DRAM."
