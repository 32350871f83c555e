"""Reading a compare run directory: everything its report shows, checked file by file.

:func:`load_run` reads only the files ``hwsim compare`` wrote (docs/compare.md) and raises an
:class:`~hwsim.core.errors.InputError` naming the file when one is missing or invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.files import read_json, read_jsonl, read_text
from hwsim.core.outputs import SUMMARY_FORMAT, SUMMARY_VERSION
from hwsim.core.rules import rule_dirname
from hwsim.core.yaml_lines import load_yaml_text


@dataclass(frozen=True)
class SeedRun:
    """The metrics rows of one training run (one rule, one seed)."""

    run_dir: str
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class RunData:
    """Everything the report shows, read from one compare run directory."""

    run_dir: Path
    summary: dict[str, Any]
    rules: list[str]
    chips: list[str]
    seed_runs: dict[str, list[SeedRun]]
    simulations: dict[str, dict[str, dict[str, Any]]]  # chip → rule → RuleResult dict
    chip_texts: dict[str, str]
    chip_memories: dict[str, list[str]]  # memory names innermost first
    experiment_text: str
    config: dict[str, Any] = field(default_factory=dict)  # first run's config.yaml

    def rule_summary(self, chip: str, rule: str) -> dict[str, Any]:
        """The ``RULE`` block of summary.json for ``rule`` on ``chip``."""
        block: dict[str, Any] = self.summary["chips"][chip]["rules"][rule]
        return block


def _inside(run_dir: Path, relative: str, what: str) -> Path:
    path = (run_dir / relative).resolve()
    if run_dir.resolve() not in path.parents:
        raise InputError(f"{run_dir / 'summary.json'}: {what} {relative!r} is outside the run")
    return path


def _require(mapping: Any, key: str, where: str, expected: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise InputError(f"{where}: missing key {key!r}; expected {expected}")
    return mapping[key]


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    expected = "one JSON object per epoch (docs/learning.md)"
    rows = read_jsonl(path, expected)
    for number, row in enumerate(rows, start=1):
        for key in ("epoch", "test_accuracy"):
            _require(row, key, f"{path} row {number}", expected)
    if not rows:
        raise InputError(f"{path}: empty; expected {expected}")
    return rows


def load_run(run_dir: str | Path) -> RunData:
    """Read and check every file of a compare run directory that the report needs."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory; expected a `hwsim compare` run directory")
    summary_path = run_dir / "summary.json"
    expected = "the summary of `hwsim compare` (docs/compare.md)"
    summary = read_json(summary_path, expected)
    where = str(summary_path)
    if not isinstance(summary, dict) or summary.get("format") != SUMMARY_FORMAT:
        raise InputError(f"{where}: expected 'format': {SUMMARY_FORMAT!r}; not a compare summary")
    if summary.get("version") != SUMMARY_VERSION:
        raise InputError(
            f"{where}: unsupported version {summary.get('version')!r}; expected {SUMMARY_VERSION}"
        )
    rules = list(_require(summary, "rule_order", where, "a list of rule specs"))
    chips = list(_require(summary, "chip_order", where, "a list of chip names"))
    chip_blocks = _require(summary, "chips", where, "one block per chip")
    for key in ("data", "seeds", "experiment"):
        _require(summary, key, where, "see docs/compare.md")
    if not rules or not chips:
        raise InputError(f"{where}: 'rule_order' and 'chip_order' must not be empty")
    for chip in chips:
        block = _require(chip_blocks, chip, f"{where}: chips", "a block per chip of chip_order")
        rule_blocks = _require(block, "rules", f"{where}: chips.{chip}", "a block per rule")
        for rule in rules:
            _require(rule_blocks, rule, f"{where}: chips.{chip}.rules", "a block per rule")

    first_chip = chips[0]
    seed_runs: dict[str, list[SeedRun]] = {}
    for rule in rules:
        dirs = _require(
            chip_blocks[first_chip]["rules"][rule], "run_dirs", where, "runs/<rule>-seed<k>"
        )
        seed_runs[rule] = [
            SeedRun(d, _read_metrics(_inside(run_dir, d, "run dir") / "metrics.jsonl"))
            for d in dirs
        ]
    config: dict[str, Any] = {}
    first_run = seed_runs[rules[0]][0].run_dir if seed_runs[rules[0]] else None
    if first_run is not None and (run_dir / first_run / "config.yaml").is_file():
        config_path = run_dir / first_run / "config.yaml"
        loaded = load_yaml_text(read_text(config_path, "the run's config.yaml"), config_path)
        config = loaded if isinstance(loaded, dict) else {}

    simulations: dict[str, dict[str, dict[str, Any]]] = {}
    chip_texts: dict[str, str] = {}
    chip_memories: dict[str, list[str]] = {}
    for chip in chips:
        simulations[chip] = {}
        for rule in rules:
            path = run_dir / "simulation" / chip / f"{rule_dirname(rule)}.json"
            sim = read_json(path, "hwsim.sim.api RuleResult.to_dict() with a timeline")
            if isinstance(sim, dict) and "rules" in sim:  # a whole `hwsim simulate --json`
                sim = _require(sim["rules"], rule, str(path), f"rule {rule}")
            _require(sim, "timeline", str(path), "a simulation with timeline=True")
            simulations[chip][rule] = sim
        copy = chip_blocks[chip].get("copy", f"chips/{chip}.yaml")
        chip_path = _inside(run_dir, copy, "chip copy")
        chip_texts[chip] = read_text(chip_path, "the chip YAML used")
        chip_yaml = load_yaml_text(chip_texts[chip], chip_path)
        memories = chip_yaml.get("memories") if isinstance(chip_yaml, dict) else None
        chip_memories[chip] = list(memories) if isinstance(memories, dict) else []
    experiment_text = read_text(run_dir / "experiment.yaml", "the resolved experiment YAML")
    return RunData(
        run_dir=run_dir,
        summary=summary,
        rules=rules,
        chips=chips,
        seed_runs=seed_runs,
        simulations=simulations,
        chip_texts=chip_texts,
        chip_memories=chip_memories,
        experiment_text=experiment_text,
        config=config,
    )
