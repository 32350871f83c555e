"""Reading a compare run directory: everything its report shows, checked file by file.

:func:`load_run` reads only the files ``hwsim compare`` wrote (docs/compare.md) and raises an
:class:`~hwsim.core.errors.InputError` naming the file when one is missing or invalid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.files import read_json, read_jsonl, read_text
from hwsim.core.layer_names import rename_layer_keys, run_layer_renames
from hwsim.core.outputs import SUMMARY_FORMAT, SUMMARY_VERSION
from hwsim.core.rules import rule_dirname
from hwsim.core.yaml_lines import load_yaml_text
from hwsim.sim.explain import CAUSES, NEW_CAUSES


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
    #: chip → memory name → its ``kind`` (register_file, sram, global_buffer, dram, rom, …)
    chip_kinds: dict[str, dict[str, str]] = field(default_factory=dict)

    def layers(self, chip: str) -> list[str]:
        """The workload's layer names in layer order, as the simulation of ``chip`` names them
        (from the per-layer counts, else from the loop orders, which list every layer)."""
        for rule in self.rules:
            by_layer = self.rule_summary(chip, rule).get("counts_by_layer")
            if isinstance(by_layer, dict) and by_layer:
                return list(by_layer)
        names: list[str] = []
        for rule in self.rules:
            sim = self.simulations[chip][rule]
            for source in (sim.get("loop_orders") or {}, *(sim.get("placement") or {}).values()):
                names += [n for n in source if n not in names]
        return names

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
    rename_layer_keys(rows, run_layer_renames(path.parent))  # a run from before fc1/conv1
    for number, row in enumerate(rows, start=1):
        for key in ("epoch", "test_accuracy"):
            _require(row, key, f"{path} row {number}", expected)
        check_shape(row, _METRICS_ROW, path, f"row {number}")
    if not rows:
        raise InputError(f"{path}: empty; expected {expected}")
    return rows


# --------------------------------------------------------------------------- shapes the report uses
#
# A shape is "num" (a finite number), "int", "str", "bool", a tuple ("map", SHAPE) (an object
# whose values all have SHAPE), ("list", SHAPE), ("row", SHAPE, ...) (a list of exactly those),
# or a dict {key: SHAPE} (an object with those keys). A shape or key ending in "?" may also be
# null; such a key may be absent too.
Shape = Any

_ENERGY: Shape = {
    "total": "num",
    "breakdown": ("map", "num"),
    "memory_by_level": ("map", "num"),
    "by_phase?": ("map", "num"),
}
_COUNT: Shape = {"bits": "num", "words?": "num", "accesses?": "num", "energy_pj": "num"}
#: A rule's wear on a chip with non-volatile levels (hwsim.sim.wear, ``Wear.to_dict``).
_WEAR: Shape = {
    "measured": "bool",
    "updates_per_step?": "int",
    "update_fraction?": ("map", "num"),
    "measured_batch?": "int",
    "tensors": (
        "list",
        {
            "level": "str",
            "technology": "str",
            "tensor": "str",
            "cells": "num",
            "writes_per_step": "num",
            "mean_writes_per_cell_per_step": "num",
            "max_writes_per_cell_per_step": "num",
            "max_layer": "str",
            "measured": "bool",
            "endurance_cycles?": "num",
            "steps_to_endurance?": "num",
            "runs_to_endurance?": "num",
        },
    ),
    "first_failure?": {
        "level": "str",
        "tensor": "str",
        "layer": "str",
        "steps": "num",
        "runs?": "num",
    },
}
_STATS: Shape = {"mean": "num?", "std": "num?", "per_seed?": ("list", "num?")}
_PER_EPOCH: Shape = {"mean": ("list", "num?"), "std": ("list", "num?")}
#: One rule's measured update sparsity over its seeds (summary.json's ``update_sparsity``).
_SPARSITY: Shape = {
    "measured": "bool",
    "seeds": ("list", "int"),
    "seeds_without?": ("list", "int"),
    "simulated_seed": "int",
    "simulated_run": "str",
    "simulated_measured?": "bool",
    "how?": "any",
    "batch_size?": "int",
    "layers?": (
        "map",
        {
            "weights?": "int",
            "levels?": "any",
            "seeds": ("list", "int"),
            "changed_fraction": _STATS,
            "changed_fraction_per_epoch": _PER_EPOCH,
            "max_changes_per_weight": {"max": "int", "per_seed": ("list", "int")},
            "max_change_rate?": {"max": "num?", "per_seed": ("list", "num?")},
            "mean_changes_per_weight?": "num",
        },
    ),
    "all_layers?": {
        "weights?": "int",
        "changed_fraction": _STATS,
        "changed_fraction_per_epoch": _PER_EPOCH,
    },
}
_RULE: Shape = {
    "status": "str",
    "test_accuracy": {
        "final": "num?",
        "final_std": "num?",
        "best": "num?",
        "best_std": "num?",
        "per_seed_final": ("list", "num?"),
    },
    "train_accuracy_final?": "num",
    "final_alignment_deg?": ("map", "num?"),
    "epochs_completed?": "int",
    "run_dirs": ("list", "str"),
    "weight_reads_bits": ("map", "num"),
    "weight_writes_bits": ("map", "num"),
    "counts": ("map", ("map", ("map", ("map", _COUNT)))),
    "weight_transport_bits": "num",
    "sync_write_bits": "num",
    "feedback_read_bits": "num",
    "feedback_generated_values?": "num",
    "macs?": "num",
    "energy_pj": _ENERGY,
    "latency_cycles": "num",
    "latency_s": "num",
    "init?": {"energy_pj?": _ENERGY, "latency_cycles?": "num"},
    "run_totals": {"energy_pj": _ENERGY, "latency_cycles?": "num", "latency_s?": "num"},
    "floor_pj?": {
        "total": "num",
        "memory": "num",
        "compute": "num",
        "memory_by_level?": ("map", "num"),
        "memory_by_tensor?": ("map", "num"),
    },
    "energy_over_floor?": "num",
    "gap_to_bp?": {
        "rule": "str",
        "energy_pj": {
            "bp": "num",
            "rule": "num",
            "difference": "num",
            # causes added after a run was saved (NEW_CAUSES) may be absent from it
            "causes": {(f"{cause}?" if cause in NEW_CAUSES else cause): "num" for cause in CAUSES},
            "shares?": ("map", "num?"),
            "net_causes?": ("map", "num"),
            "leading_cause?": "str",
            "init_difference?": "num",
        },
        "latency_cycles": {
            "bp": "num",
            "rule": "num",
            "difference": "num",
            "by_phase": ("map", "num"),
            "stall_difference?": ("map", "num"),
            "error_stall_difference?": "num",
        },
    },
    "ratios_to_bp?": ("map", "num?"),
    # the step split by layer (runs made before hwsim recorded it have neither)
    "counts_by_layer?": ("map", ("map", ("map", ("map", ("map", _COUNT))))),
    "energy_by_layer_pj?": ("map", _ENERGY),
    # a chip without non-volatile levels has null; runs priced before hwsim priced wear, none
    "wear?": _WEAR,
}
_SURVEY_RULE: Shape = {
    "energy_pj": "num",
    "latency_cycles": "num",
    "latency_s?": "num",
    "energy_over_floor?": "num",
    "energy_vs_bp?": "num",
    "latency_vs_bp?": "num",
    "gap_leading_cause?": "str",
    # the silicon of the rule's own tensors (runs made before hwsim reported area have none)
    "own_silicon?": ("map", {"levels": ("map", "int"), "area_mm2?": "num", "occupied_mm2?": "num"}),
}
#: One rule's DRAM accesses per step, feedback regenerated against stored (feedback_storage.py).
_PRNG_SAVING: Shape = {
    "rule": "str",
    "level": "str",
    "stored_accesses": "int",
    "prng_accesses": "int",
    "stored_feedback_accesses": "int",
    "reduction": "num",
}
_SUMMARY: Shape = {
    "hwsim_version?": "str",
    "environment?": ("map", "any"),
    "experiment": ("map", "any"),
    "data": {"dataset?": "str", "train_samples": "int", "test_samples": "int"},
    "seeds": ("list", "int"),
    "update_sparsity?": ("map", _SPARSITY),
    "chip_survey?": (
        "list",
        {
            "chip": "str",
            "description?": "str",
            "in_report?": "bool",
            "area_mm2?": "num",
            "rules": ("map", _SURVEY_RULE),
            "prng_against_stored?": ("list", _PRNG_SAVING),
            "unsupported?": ("map", "str"),
        },
    ),
}
#: One event of a simulation timeline: resource, phase, tensor, layer, start and stop cycle.
_TIMELINE_EVENT: Shape = ("row", "str", "str", "str?", "any", "num", "num")
#: What the report reads from simulation/<chip>/<rule>.json.
_SIMULATION: Shape = {
    "timeline": ("list", _TIMELINE_EVENT),
    "placement?": ("map", ("map", "str")),
    "spills?": (
        "list",
        {
            "tensor": "str",
            "layer": "str",
            "preferred": "str",
            "placed": "str",
            "accesses_per_bit": "num",
        },
    ),
    "loop_orders?": ("map", ("map", "any")),
    "feedback_generated_values?": "num",
}
_METRICS_ROW: Shape = {
    "epoch": "int",
    "test_accuracy": "num?",
    "train_accuracy?": "num",
    "alignment_deg?": ("map", "num?"),
    "diverged?": "bool",
}
_EXPERIMENT_SECTIONS = ("network", "quantization", "training", "dataset")


def _kind(value: Any, shape: str) -> bool:
    if shape == "any":
        return True
    if shape == "num":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if shape == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {"str": str, "bool": bool}[shape])


_WORDS = {
    "num": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "any": "anything",
}


def _describe(shape: Shape) -> str:
    if isinstance(shape, str):
        return _WORDS[shape.rstrip("?")] + (" or null" if shape.endswith("?") else "")
    if isinstance(shape, dict):
        return "an object with " + ", ".join(k.rstrip("?") for k in shape)
    if shape[0] == "row":
        return f"a list of {len(shape) - 1} values"
    return f"{'an object' if shape[0] == 'map' else 'a list'} of {_describe(shape[1])}"


def check_shape(value: Any, shape: Shape, file: Path | str, key: str) -> None:
    """``value`` has ``shape`` (above), or an :class:`InputError` naming ``file`` and ``key``."""
    if isinstance(shape, str):
        if shape.endswith("?") and value is None:
            return
        if _kind(value, shape.rstrip("?")):
            return
    elif isinstance(shape, dict):
        if isinstance(value, dict):
            for name, inner in shape.items():
                optional = name.endswith("?")
                name = name.rstrip("?")
                if name not in value or (optional and value[name] is None):
                    if optional:
                        continue
                    where = f"{file}: {key}" if key else str(file)
                    raise InputError(f"{where}: missing key {name!r}")
                check_shape(value[name], inner, file, f"{key}.{name}" if key else name)
            return
    elif shape[0] == "row":
        if isinstance(value, list) and len(value) == len(shape) - 1:
            for index, (item, inner) in enumerate(zip(value, shape[1:], strict=True)):
                check_shape(item, inner, file, f"{key}[{index}]")
            return
    elif shape[0] == "map":
        if isinstance(value, dict):
            for name, item in value.items():
                check_shape(item, shape[1], file, f"{key}.{name}")
            return
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_shape(item, shape[1], file, f"{key}[{index}]")
        return
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise InputError(f"{file}: {key or 'the document'} = {shown}: expected {_describe(shape)}")


def _check_summary(summary: dict[str, Any], path: Path, rules: list[str], chips: list[str]) -> None:
    """The parts of summary.json the report reads have the types it draws from."""
    check_shape(summary, _SUMMARY, path, "")
    for section in _EXPERIMENT_SECTIONS:
        part = summary["experiment"].get(section)
        if part is not None:
            check_shape(part, ("map", "any"), path, f"experiment.{section}")
    for name in ("rule_order", "chip_order"):
        check_shape(summary[name], ("list", "str"), path, name)
    for chip in chips:
        block = summary["chips"][chip]
        check_shape(block, {"copy?": "str", "clock_hz?": "num"}, path, f"chips.{chip}")
        for rule in rules:
            check_shape(block["rules"][rule], _RULE, path, f"chips.{chip}.rules.{rule}")


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
    rules = _require(summary, "rule_order", where, "a list of rule specs")
    chips = _require(summary, "chip_order", where, "a list of chip names")
    check_shape(rules, ("list", "str"), summary_path, "rule_order")
    check_shape(chips, ("list", "str"), summary_path, "chip_order")
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
    _check_summary(summary, summary_path, rules, chips)

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
    chip_kinds: dict[str, dict[str, str]] = {}
    for chip in chips:
        simulations[chip] = {}
        for rule in rules:
            path = run_dir / "simulation" / chip / f"{rule_dirname(rule)}.json"
            sim = read_json(path, "hwsim.sim.api RuleResult.to_dict() with a timeline")
            if isinstance(sim, dict) and "rules" in sim:  # a whole `hwsim simulate --json`
                sim = _require(sim["rules"], rule, str(path), f"rule {rule}")
            _require(sim, "timeline", str(path), "a simulation with timeline=True")
            check_shape(sim, _SIMULATION, path, "")
            simulations[chip][rule] = sim
        copy = chip_blocks[chip].get("copy", f"chips/{chip}.yaml")
        chip_path = _inside(run_dir, copy, "chip copy")
        chip_texts[chip] = read_text(chip_path, "the chip YAML used")
        chip_yaml = load_yaml_text(chip_texts[chip], chip_path)
        memories = chip_yaml.get("memories") if isinstance(chip_yaml, dict) else None
        chip_memories[chip] = list(memories) if isinstance(memories, dict) else []
        chip_kinds[chip] = {
            str(name): str(spec["kind"])
            for name, spec in (memories.items() if isinstance(memories, dict) else ())
            if isinstance(spec, dict) and isinstance(spec.get("kind"), str)
        }
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
        chip_kinds=chip_kinds,
    )


def saved_number(value: object) -> float:
    """A number of a saved summary, or 0 where a damaged summary has none (the report says what
    it can rather than stop)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return 0.0
