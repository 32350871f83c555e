"""accesses.csv's layer column, on a hand-built summary."""

from __future__ import annotations

import csv
import io

from hwsim.experiments.compare import CSV_COLUMNS, accesses_csv


def count(bits: int, energy: float) -> dict[str, float]:
    return {"bits": bits, "words": bits // 8, "accesses": bits // 64, "energy_pj": energy}


def test_one_row_per_layer_and_an_empty_layer_without_the_split() -> None:
    split = {
        "counts": {"sram": {"weights": {"forward": {"read": count(192, 3.0)}}}},
        "counts_by_layer": {
            "fc1": {"sram": {"weights": {"forward": {"read": count(128, 2.0)}}}},
            "fc2": {"sram": {"weights": {"forward": {"read": count(64, 1.0)}}}},
        },
    }
    old = {"counts": {"dram": {"gradients": {"update": {"write": count(64, 9.0)}}}}}
    summary = {
        "chip_order": ["c"],
        "rule_order": ["bp", "fa"],
        "chips": {"c": {"rules": {"bp": split, "fa": old}}},
    }
    rows = list(csv.DictReader(io.StringIO(accesses_csv(summary))))
    # layer keeps its place (the 11th column); the wear columns come after it
    assert CSV_COLUMNS[10] == "layer" and list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["rule"], r["layer"], r["bits"], r["accesses"]) for r in rows] == [
        ("bp", "fc1", "128", "2"),
        ("bp", "fc2", "64", "1"),
        ("fa", "", "64", "1"),
    ]
    assert sum(int(r["bits"]) for r in rows if r["rule"] == "bp") == 192
