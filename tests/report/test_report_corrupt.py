"""``hwsim report`` on damaged compare runs: wrong types anywhere in summary.json, simulation
timelines and metrics are one error naming the file and key (exit 2), never a traceback.

The seeded loop replaces values of a real summary.json (every key path, nested ones included) by
null, a string, a list, an object, a negative number, a boolean or a huge number. Default run:
``FUZZ_CASES`` cases; ``-m slow``: ``FUZZ_CASES_SLOW`` more.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hwsim.cli import main

FUZZ_CASES = 12
FUZZ_CASES_SLOW = 200
REPLACEMENTS: list[Any] = [None, "x", [], {}, -1, -1.5, True, 1e308, [1, 2], {"a": 1}]


def report(run: Path) -> Result:
    return CliRunner().invoke(
        main, ["report", str(run)], catch_exceptions=False, terminal_width=400
    )


def clean(result: Result) -> str:
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def key_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in ``value`` (list items: the first three)."""
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from key_paths(item, (*prefix, index))


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


@pytest.fixture
def fresh(compare_run: Path, tmp_path: Path) -> Iterator[Path]:
    """A factory-like fixture: a new private copy of the run for each call of ``next``."""

    def copies() -> Iterator[Path]:
        for n in range(10_000):
            target = tmp_path / f"run{n}"
            shutil.copytree(
                compare_run,
                target,
                ignore=shutil.ignore_patterns("checkpoint.pt", "snapshots", "figures", "report.*"),
            )
            yield target

    return copies()


def _fuzz(fresh: Iterator[Path], compare_run: Path, seed: int, cases: int) -> dict[str, int]:
    summary = json.loads((compare_run / "summary.json").read_text())
    paths = list(key_paths(summary))
    rng = random.Random(seed)
    outcomes = {"exit 0": 0, "exit 2": 0}
    for _ in range(cases):
        path, value = rng.choice(paths), rng.choice(REPLACEMENTS)
        run = next(fresh)
        (run / "summary.json").write_text(json.dumps(replaced(summary, path, value)))
        message = clean(report(run))
        if "error" in message:
            outcomes["exit 2"] += 1
            assert "summary.json" in message or ".json" in message or ".yaml" in message, (
                path,
                value,
                message,
            )
        else:
            outcomes["exit 0"] += 1
    return outcomes


def test_summary_fuzz_is_exit_0_or_2(fresh, compare_run):
    outcomes = _fuzz(fresh, compare_run, seed=0, cases=FUZZ_CASES)
    assert outcomes["exit 2"] > 0


@pytest.mark.slow
def test_summary_fuzz_many(fresh, compare_run):
    outcomes = _fuzz(fresh, compare_run, seed=1, cases=FUZZ_CASES_SLOW)
    assert outcomes["exit 2"] > 0


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("chips", "edge_sram", "rules", "fa", "energy_pj", "total"), "12", "energy_pj.total"),
        (("chips", "edge_sram", "rules", "fa"), None, "chips.edge_sram.rules.fa"),
        (("chips", "edge_sram", "rules", "bp", "energy_pj", "breakdown"), None, "breakdown"),
        (("chips", "dfa_prng", "rules", "ifa", "counts"), [], "chips.dfa_prng.rules.ifa.counts"),
        (("chips", "edge_sram", "rules", "fa", "gap_to_bp", "energy_pj", "causes"), {}, "causes"),
        (("chips", "edge_sram", "rules", "fa", "run_dirs"), True, "run_dirs"),
        (("chips", "edge_sram", "rules", "fa", "test_accuracy", "final"), "high", "final"),
        (("data", "train_samples"), "200", "data.train_samples"),
        (("seeds",), None, "seeds"),
        (("rule_order",), "bp", "rule_order"),
        (("chip_survey", 0, "rules"), [], "chip_survey[0].rules"),
    ],
)
def test_wrong_type_in_summary_names_file_and_key(fresh, compare_run, path, value, named):
    run = next(fresh)
    summary = json.loads((compare_run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps(replaced(summary, path, value)))
    result = report(run)
    assert result.exit_code == 2
    message = clean(result)
    assert str(run / "summary.json") in message and named in message, message


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda t: [*t[:1], None, *t[2:]], "timeline[1]"),
        (lambda t: [t[0][:3], *t[1:]], "timeline[0]"),
        (lambda t: [[*t[0][:4], "start", t[0][5]], *t[1:]], "timeline[0][4]"),
        (lambda t: {"not": "a list"}, "timeline"),
        (lambda t: None, "timeline"),
    ],
)
def test_malformed_timeline_rows_name_the_simulation_file(fresh, change, named):
    run = next(fresh)
    path = run / "simulation" / "edge_sram" / "fa.json"
    sim = json.loads(path.read_text())
    sim["timeline"] = change(sim["timeline"])
    path.write_text(json.dumps(sim))
    result = report(run)
    assert result.exit_code == 2
    message = clean(result)
    assert str(path) in message and named in message, message


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"test_accuracy": "0.5"}, "test_accuracy"),
        ({"alignment_deg": [1]}, "alignment_deg"),
        ({"epoch": 1.5}, "epoch"),
        ({"diverged": "no"}, "diverged"),
    ],
)
def test_metrics_rows_with_wrong_types_name_the_file(fresh, change, named):
    run = next(fresh)
    path = next((run / "runs").glob("fa-seed1-*")) / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1].update(change)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = report(run)
    assert result.exit_code == 2
    message = clean(result)
    assert str(path) in message and named in message, message


def test_torn_metrics_line_names_file_and_line(fresh):
    run = next(fresh)
    path = next((run / "runs").glob("bp-seed0-*")) / "metrics.jsonl"
    path.write_text(path.read_text()[:-20])
    message = clean(report(run))
    assert f"{path}:" in message and "invalid JSON" in message, message


@pytest.mark.parametrize("seed", range(3))
def test_simulation_file_fuzz_is_exit_0_or_2(fresh, compare_run, seed):
    sim_path = Path("simulation") / "dfa_prng" / "ifa.json"
    sim = json.loads((compare_run / sim_path).read_text())
    used = {k: sim[k] for k in ("timeline", "loop_orders", "feedback_generated_values") if k in sim}
    paths = list(key_paths(used))
    rng = random.Random(seed)
    path, value = rng.choice(paths), rng.choice(REPLACEMENTS)
    run = next(fresh)
    (run / sim_path).write_text(json.dumps(replaced(sim, path, value)))
    message = clean(report(run))
    assert "error" not in message or str(run / sim_path) in message, (path, value, message)
