"""``hwsim sweep chip``: simulate one workload per rule on a grid of chip variants.

Torch-free (it trains nothing): each point of the grid is the base chip with ``--set``
overrides (:func:`hwsim.sim.chip.load_chip`), and each rule is simulated on it once
(:func:`hwsim.sim.api.simulate`). Several parameters form a grid (their product, the first one
outermost). The workload is fixed (a ``workload.json`` or a model spec) or, from a compare run,
each rule's own (its first seed's ``workload.json``, found through ``summary.json``).

Per point and rule ``sweep.json`` records energy and latency per step, the energy by part and
the memory accesses by level and direction, the rule ÷ BP ratios and the **transport share**:
:func:`transport_energy_pj` ÷ the step's energy, where the transport energy is what carrying W
(or its sign) to the error unit costs beyond reading an operand there — the interconnect bits
of W in the backward phase, and a mirror's synchronization (its writes in the update phase, a
staging write and read through ``mirror_sync_via``, and their interconnect bits). These are
the ``transport_wire`` and ``mirror_sync`` causes of BP's gap (:mod:`hwsim.sim.explain`):
energy no rule without weight transport spends. Reading W (or a mirror) for the error phase is
left out, since FA pays the same to read B.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.files import claim_out_dir, jsonable, read_json, write_atomic
from hwsim.core.outputs import SUMMARY_FILE, SUMMARY_FORMAT, SWEEP_SUMMARY_FILE
from hwsim.core.resources import DEFAULT_CHIP
from hwsim.core.rules import parse_rules
from hwsim.core.workload import Workload
from hwsim.sim.api import RuleResult, resolve_workload, simulate
from hwsim.sim.chip import Chip, load_chip
from hwsim.sim.chip_document import parse_override
from hwsim.sim.pricing import ENERGY_PARTS

__all__ = [
    "CHIP_SWEEP_FORMAT",
    "CSV_FILE",
    "DEFAULT_RULES",
    "ChipSweepSpec",
    "Parameter",
    "make_chip_sweep_spec",
    "parse_parameters",
    "run_chip_sweep",
    "split_values",
    "transport_energy_pj",
]

CHIP_SWEEP_FORMAT = "hwsim-chip-sweep"
CHIP_SWEEP_VERSION = 1
#: The identity of a chip sweep directory (the spec), as for the training sweeps.
SPEC_FILE = "sweep-spec.json"
SUMMARY_FILE_NAME = SWEEP_SUMMARY_FILE
CSV_FILE = "sweep.csv"
#: Rules simulated when neither ``--algo`` nor a compare run names them.
DEFAULT_RULES = ("bp", "fa", "ifa")


@dataclass(frozen=True)
class Parameter:
    """One swept chip key: its dotted path and its values (as given, and read as YAML)."""

    key: str
    texts: tuple[str, ...]
    values: tuple[Any, ...]

    def override(self, index: int) -> str:
        """The ``--set`` override of value ``index``: ``key=text``."""
        return f"{self.key}={self.texts[index]}"


def split_values(text: str) -> list[str]:
    """``"1,2,[a, b],{k: 1}"`` → ``["1", "2", "[a, b]", "{k: 1}"]``: commas inside brackets,
    braces or quotes do not split."""
    items: list[str] = []
    depth, quote, start = 0, "", 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return items


def parse_parameters(sets: Sequence[str]) -> tuple[Parameter, ...]:
    """``["memories.sram.read_energy_pj=1,2,4", "placement.weights=sram,dram"]`` → parameters.

    Each value is read as YAML (:func:`hwsim.sim.chip_document.parse_override`); an empty
    value, a key given twice or a malformed item is an :class:`InputError` naming ``--set``.
    """
    if not sets:
        raise InputError(
            "the chip sweep needs at least one --set KEY.PATH=V1,V2,…, e.g. "
            "--set memories.weight_sram.read_energy_pj=53,106,212"
        )
    parameters: list[Parameter] = []
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        texts = split_values(raw) if sep else []
        if not sep or not key or any(not t for t in texts):
            raise InputError(
                f"--set {item!r}: expected KEY.PATH=V1,V2,… (comma-separated values, none empty), "
                "e.g. memories.weight_sram.read_energy_pj=53,106,212"
            )
        values = tuple(parse_override(f"{key}={t}")[1] for t in texts)
        if any(v is None for v in values):
            raise InputError(f"--set {key}: a swept value cannot be null (it would delete the key)")
        if key in (p.key for p in parameters):
            raise InputError(f"--set {key} is given twice: give its values once, comma-separated")
        if len(set(texts)) != len(texts):
            raise InputError(f"--set {key}: a value is given twice ({raw})")
        parameters.append(Parameter(key, tuple(texts), values))
    return tuple(parameters)


@dataclass(frozen=True)
class ChipSweepSpec:
    """What a chip sweep simulates: the base chip, each rule's workload, the parameters."""

    chip: str
    rules: tuple[str, ...]
    #: rule spec → its workload: a ``workload.json`` path or a model spec (``mlp:784-256-10``)
    workloads: dict[str, str]
    parameters: tuple[Parameter, ...]
    #: the compare run the workloads (and maybe the chip and rules) came from
    run: str | None = None
    #: where each part came from, for the summary (``"--chip"``, ``"the run's chip"``…)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def points(self) -> list[tuple[int, ...]]:
        """Every point of the grid as indices into each parameter's values, first outermost."""
        return list(itertools.product(*(range(len(p.values)) for p in self.parameters)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``sweep-spec.json``, the directory's identity)."""
        return {
            "kind": "chip",
            "chip": self.chip,
            "rules": list(self.rules),
            "workloads": dict(self.workloads),
            "run": self.run,
            "parameters": [
                {"key": p.key, "values": list(p.values), "texts": list(p.texts)}
                for p in self.parameters
            ],
        }


def make_chip_sweep_spec(
    sets: Sequence[str],
    *,
    workload: str | None = None,
    model: str | None = None,
    run: str | Path | None = None,
    chip: str | None = None,
    rules: str | None = None,
) -> ChipSweepSpec:
    """The spec of a chip sweep from the command's options (all checked; InputError when bad).

    Exactly one of ``workload`` (a ``workload.json``), ``model`` (a model spec) or ``run`` (a
    compare run directory) gives the workload. ``chip`` defaults to the run's (first) chip, else
    ``edge_sram``; ``rules`` to the run's rules, else :data:`DEFAULT_RULES`.
    """
    given = [n for n, v in (("--workload", workload), ("--model", model), ("--run", run)) if v]
    if len(given) != 1:
        raise InputError(
            "the chip sweep needs exactly one of --workload FILE, --model SPEC or --run RUN_DIR"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    parameters = parse_parameters(sets)
    notes: list[str] = []
    if run is not None:
        run_chip, run_workloads = read_compare_run(Path(run))
        specs = [r.spec for r in parse_rules(rules)] if rules else list(run_workloads)
        missing = [s for s in specs if s not in run_workloads]
        if missing:
            raise InputError(
                f"--algo {','.join(missing)}: the run {run} has no workload for "
                f"{', '.join(missing)} (it trained {', '.join(run_workloads)})"
            )
        workloads = {s: run_workloads[s] for s in specs}
        if chip is None:
            chip = run_chip
            notes.append(f"chip: the run's, {run_chip}")
    else:
        source = workload if workload is not None else model
        assert source is not None
        specs = [r.spec for r in parse_rules(rules or ",".join(DEFAULT_RULES))]
        workloads = {s: source for s in specs}
    return ChipSweepSpec(
        chip=str(chip) if chip is not None else str(DEFAULT_CHIP),
        rules=tuple(specs),
        workloads=workloads,
        parameters=parameters,
        run=str(run) if run is not None else None,
        notes=tuple(notes),
    )


def read_compare_run(run: Path) -> tuple[str, dict[str, str]]:
    """The chip (its copy in the run, else its path) and each rule's workload (its first run
    directory's ``workload.json``, as ``hwsim compare`` simulates it) of a compare run,
    read from its ``summary.json`` (docs/compare.md). Whatever is missing is an InputError."""
    path = run / SUMMARY_FILE
    expected = "the summary.json of a compare run (hwsim compare)"
    if not run.is_dir():
        raise InputError(f"--run {run}: no such directory; expected a compare run ({expected})")
    summary = read_json(path, expected)
    if not isinstance(summary, dict) or summary.get("format") != SUMMARY_FORMAT:
        raise InputError(f"{path}: not a compare summary (format {SUMMARY_FORMAT!r} expected)")
    chips = summary.get("chips")
    order = summary.get("chip_order")
    if not isinstance(chips, dict) or not isinstance(order, list) or not order:
        raise InputError(f"{path}: chips / chip_order: missing; expected {expected}")
    first = order[0]
    entry = chips.get(first)
    if not isinstance(entry, dict) or not isinstance(entry.get("rules"), dict):
        raise InputError(f"{path}: chips.{first}.rules: missing; expected {expected}")
    copy = entry.get("copy")
    chip = (
        str(run / copy)
        if isinstance(copy, str) and (run / copy).is_file()
        else str(entry.get("path", first))
    )
    rule_order = summary.get("rule_order")
    specs = rule_order if isinstance(rule_order, list) else list(entry["rules"])
    workloads: dict[str, str] = {}
    for spec in specs:
        rule = entry["rules"].get(spec)
        dirs = rule.get("run_dirs") if isinstance(rule, dict) else None
        if not isinstance(dirs, list) or not dirs or not isinstance(dirs[0], str):
            raise InputError(f"{path}: chips.{first}.rules.{spec}.run_dirs: missing or empty")
        workload = run / dirs[0] / "workload.json"
        if not workload.is_file():
            raise InputError(
                f"{workload}: not found (the workload of rule {spec}, from {path} run_dirs)"
            )
        workloads[str(spec)] = str(workload)
    if not workloads:
        raise InputError(f"{path}: rule_order: no rules")
    return chip, workloads


# --------------------------------------------------------------------------- measuring


def transport_energy_pj(result: RuleResult, chip: Chip) -> float:
    """Energy of one step spent carrying W (or its sign) to the error unit: W's interconnect
    bits in the backward phase, plus a mirror's synchronization (``weight_mirror`` accesses in
    the update phase and their interconnect bits), at ``chip``'s prices. The same as the
    ``transport_wire`` + ``mirror_sync`` causes of :func:`hwsim.sim.explain.explain_gap`."""
    step = result.step
    per_bit = chip.interconnect.energy_per_bit_pj
    wire = step.counts.interconnect_bits.get(("weights", "backward"), 0) * per_bit
    sync_wire = step.counts.interconnect_bits.get(("weight_mirror", "update"), 0) * per_bit
    sync = math.fsum(
        pj
        for (_, tensor, phase, _), pj in step.energy.by_access_pj.items()
        if tensor == "weight_mirror" and phase == "update"
    )
    return wire + sync_wire + sync


def _record(result: RuleResult, chip: Chip) -> dict[str, Any]:
    step = result.step
    accesses: dict[str, dict[str, int]] = {}
    for (level, _, _, direction), c in step.counts.accesses.items():
        by_direction = accesses.setdefault(level, {})
        by_direction[direction] = by_direction.get(direction, 0) + c.accesses
    transport = transport_energy_pj(result, chip)
    total = step.energy.total_pj
    return {
        "energy_pj": total,
        "energy_breakdown_pj": {k: step.energy.breakdown_pj[k] for k in ENERGY_PARTS},
        "latency_cycles": step.latency_cycles,
        "latency_s": step.latency_s,
        "transport_pj": transport,
        "transport_share": transport / total if total else None,
        "accesses": accesses,
        "interconnect_bits": step.counts.total_interconnect_bits,
        "macs": step.counts.total_macs,
    }


def _with_ratios(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    bp = records.get("bp")
    for record in records.values():
        record["energy_vs_bp"] = record["energy_pj"] / bp["energy_pj"] if bp else None
        record["latency_vs_bp"] = record["latency_cycles"] / bp["latency_cycles"] if bp else None
    return records


def _simulate_point(
    chip: Chip, spec: ChipSweepSpec, workloads: Mapping[str, Workload]
) -> dict[str, dict[str, Any]]:
    """Every rule on ``chip``: rules sharing a workload in one :func:`simulate` call."""
    groups: dict[str, list[str]] = {}
    for rule in spec.rules:
        groups.setdefault(spec.workloads[rule], []).append(rule)
    results: dict[str, RuleResult] = {}
    for source, rules in groups.items():
        results.update(simulate(workloads[source], chip, rules).rules)
    return _with_ratios({rule: _record(results[rule], chip) for rule in spec.rules})


def _label(spec: ChipSweepSpec, point: tuple[int, ...]) -> str:
    return ", ".join(p.override(i) for p, i in zip(spec.parameters, point, strict=True))


#: ``on_point(index, total, label)``, called before each point is simulated.
PointCallback = Callable[[int, int, str], None]


def run_chip_sweep(
    spec: ChipSweepSpec,
    out: str | Path,
    *,
    force: bool = False,
    on_point: PointCallback | None = None,
) -> dict[str, Any]:
    """Simulate every point and rule of ``spec``; write ``OUT/sweep.json`` and ``OUT/sweep.csv``.

    Every point's chip is loaded and validated before anything is simulated or written, so bad
    input (a value validation rejects, a rule a point's chip cannot run) is an
    :class:`InputError` that names the point and leaves ``out`` untouched. ``out`` is claimed
    with :func:`hwsim.core.files.claim_out_dir` (identity: ``sweep-spec.json``); the same spec
    run again overwrites its own files. Returns the ``sweep.json`` document.
    """
    out = Path(out)
    workloads = {s: resolve_workload(s) for s in dict.fromkeys(spec.workloads.values())}
    base = load_chip(spec.chip)
    points = spec.points()
    chips: list[Chip] = []
    for point in points:
        overrides = [p.override(i) for p, i in zip(spec.parameters, point, strict=True)]
        try:
            chips.append(load_chip(spec.chip, overrides=overrides))
        except InputError as exc:
            raise InputError(f"point {_label(spec, point)}:\n{exc}") from None
    base_records = _simulate_point(base, spec, workloads)  # bad rules fail before --out
    identity = jsonable(spec.to_dict())
    claim_out_dir(
        out,
        what="chip sweep",
        identity_file=SPEC_FILE,
        identity=identity,
        load=json.loads,
        force=force,
    )
    write_atomic(out / SPEC_FILE, json.dumps(identity, indent=1) + "\n")
    records = []
    for index, (point, chip) in enumerate(zip(points, chips, strict=True)):
        if on_point is not None:
            on_point(index, len(points), _label(spec, point))
        try:
            rules = _simulate_point(chip, spec, workloads)
        except InputError as exc:
            raise InputError(f"point {_label(spec, point)}: {exc}") from None
        records.append(
            {
                "values": {p.key: p.values[i] for p, i in zip(spec.parameters, point, strict=True)},
                "area_mm2": chip.area_mm2,
                "rules": rules,
            }
        )
    summary = jsonable(
        {
            "format": CHIP_SWEEP_FORMAT,
            "version": CHIP_SWEEP_VERSION,
            "kind": "chip",
            "chip": {"name": base.name, "path": base.path, "clock_hz": base.clock_hz},
            "run": spec.run,
            "rules": list(spec.rules),
            "workloads": dict(spec.workloads),
            "workload_models": {s: w.model for s, w in workloads.items()},
            "parameters": [{"key": p.key, "values": list(p.values)} for p in spec.parameters],
            "base": {"area_mm2": base.area_mm2, "rules": base_records},
            "points": records,
            "notes": list(spec.notes),
        }
    )
    write_atomic(out / SUMMARY_FILE_NAME, json.dumps(summary, indent=1) + "\n")
    write_atomic(out / CSV_FILE, sweep_csv(summary))
    return dict(summary)


#: The columns of ``sweep.csv`` after one column per parameter.
CSV_COLUMNS = (
    "rule",
    "energy_pj",
    "latency_cycles",
    "latency_s",
    "transport_pj",
    "transport_share",
    "energy_vs_bp",
    "latency_vs_bp",
)


def sweep_csv(summary: Mapping[str, Any]) -> str:
    """``sweep.csv``: one row per point × rule, one column per parameter then
    :data:`CSV_COLUMNS` (values as in ``sweep.json``; an empty cell where there is none)."""
    keys = [p["key"] for p in summary["parameters"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*keys, *CSV_COLUMNS])
    for point in summary["points"]:
        values = [_cell(point["values"][k]) for k in keys]
        for rule, record in point["rules"].items():
            writer.writerow(
                [*values, rule, *(_cell(record.get(c)) for c in CSV_COLUMNS if c != "rule")]
            )
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def value_text(value: Any) -> str:
    """A swept value as the table and the figure show it."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
