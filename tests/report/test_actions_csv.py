"""A compare run's ``actions.csv`` (docs/compare.md) against its own ``summary.json``: every
chip × rule, and each step's rows price the step's total energy (the sums themselves are
derived in tests/sim/test_actions.py)."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import pytest

from hwsim.core.files import MANIFEST
from hwsim.sim.actions import COLUMNS


def test_actions_csv_prices_every_chip_and_rule(compare_run: Path) -> None:
    summary = json.loads((compare_run / "summary.json").read_text())
    with open(compare_run / "actions.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    assert "actions.csv" in (compare_run / MANIFEST).read_text().splitlines()
    pairs = list(dict.fromkeys((r["chip"], r["rule"]) for r in rows))
    assert pairs == [(c, r) for c in summary["chip_order"] for r in summary["rule_order"]]
    step_pj: dict[tuple[str, str], list[float]] = defaultdict(list)
    macs: dict[tuple[str, str], int] = defaultdict(int)
    nominal: dict[tuple[str, str], str] = {}
    for r in rows:
        key = (r["chip"], r["rule"])
        # a rule's nominal step comes first (a smaller last batch's step after it)
        if r["scope"] != "step" or nominal.setdefault(key, r["batch_size"]) != r["batch_size"]:
            continue
        step_pj[key].append(float(r["energy_pj"]))
        if r["action"].startswith("mac_"):
            macs[key] += int(r["count"])
    for chip, rule in pairs:
        block = summary["chips"][chip]["rules"][rule]
        total = math.fsum(step_pj[(chip, rule)])
        assert total == pytest.approx(block["energy_pj"]["total"], rel=1e-9)
        assert macs[(chip, rule)] == block["macs"]
