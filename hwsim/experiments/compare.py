"""`hwsim compare`: train every rule, simulate each on every chip, write one comparison.

The run directory and ``summary.json`` are documented in docs/compare.md. Everything is
resumable: training runs resume from their checkpoints, finished ones are reused, and the
summary, CSV and report are written atomically at the end (an existing report is never
overwritten without ``force``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hwsim import __version__
from hwsim.core.errors import InputError
from hwsim.core.files import claim_out_dir, write_atomic
from hwsim.core.outputs import SUMMARY_FORMAT, SUMMARY_VERSION, WEIGHT_TENSORS
from hwsim.core.rules import rule_dirname
from hwsim.core.stats import mean_std
from hwsim.core.yaml_lines import load_yaml_text
from hwsim.experiments.experiment import Experiment

CSV_COLUMNS = (
    "chip",
    "rule",
    "level",
    "tensor",
    "phase",
    "direction",
    "bits",
    "words",
    "accesses",
    "energy_pj",
    "layer",  # last, so the columns before it keep their positions
)


def _prepare_out(out: Path, experiment: Experiment, force: bool) -> None:
    claim_out_dir(
        out,
        what="compare run",
        identity_file="experiment.yaml",
        identity=experiment.to_dict(),
        load=lambda text: load_yaml_text(text, out / "experiment.yaml"),
        force=force,
        finished="report.html",  # written last: a run cut short before it finishes on rerun
    )


def default_workers(device: str | None = "cpu") -> int:
    """How many training runs ``hwsim compare`` runs at once by default: one per core the
    process may use on the CPU (each with one torch thread), one on a GPU."""
    from hwsim.experiments.executors import available_cores
    from models.device import resolve_device

    return 1 if resolve_device(device).type != "cpu" else available_cores()


def train_runs(
    jobs: dict[tuple[str, int], tuple[Any, Path]],
    *,
    workers: int = 1,
    device: str | None = "cpu",
    threads: int | None = 1,
    on_train_start: Callable[[str, int, int], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_trained: Callable[[str, int], None] | None = None,
) -> dict[tuple[str, int], Any]:
    """Train each ``(rule, seed) → (config, run_dir)``; returns the :class:`RunResult` of each.

    ``workers`` > 1 trains that many runs at once in worker processes
    (:class:`~hwsim.experiments.executors.ProcessExecutor`), each with ``threads`` torch
    threads. A run's numbers do not depend on ``workers``: every run is seeded on its own and
    trains with the same thread count wherever it runs. Callbacks: ``on_train_start`` and
    ``on_epoch`` (per metrics row) with one worker, ``on_trained(rule, seed)`` as each ends.
    A run that fails in a worker is reported by
    :class:`~hwsim.experiments.executors.FailedPointsError` once the others are done. Ctrl-C
    stops the workers; each run resumes from its last checkpoint on the next call.
    """
    from hwsim.experiments.executors import FailedPointsError, ProcessExecutor
    from models.training import torch_threads, train, train_job

    results: dict[tuple[str, int], Any] = {}
    if workers <= 1 or len(jobs) <= 1:
        with torch_threads(threads):
            for (rule, seed), (config, run_dir) in jobs.items():
                if on_train_start:
                    on_train_start(rule, seed, config.epochs)
                results[rule, seed] = train(config, run_dir, on_epoch=on_epoch, device=device)
                if on_trained:
                    on_trained(rule, seed)
        return results
    items = [(key, config, run_dir, device, threads) for key, (config, run_dir) in jobs.items()]
    failed: list[tuple[str, str]] = []
    executor = ProcessExecutor(workers=min(workers, len(jobs)), threads=threads or 1, retries=0)
    with executor, contextlib.closing(executor.map_unordered(train_job, items)) as outcomes:
        for outcome in outcomes:
            rule, seed = outcome.item[0]
            if outcome.error is not None:
                failed.append((f"{rule_dirname(rule)}-seed{seed}", outcome.error))
                continue
            results[rule, seed] = outcome.result
            if on_trained:
                on_trained(rule, seed)
    if failed:
        raise FailedPointsError("the comparison's training runs", failed)
    return {key: results[key] for key in jobs}  # in the caller's order


def run_compare(
    experiment: Experiment,
    out_dir: str | Path,
    *,
    force: bool = False,
    device: str | None = "cpu",
    threads: int | None = 1,
    workers: int = 1,
    on_train_start: Callable[[str, int, int], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_trained: Callable[[str, int], None] | None = None,
    on_simulated: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Train, simulate and write the comparison of ``experiment`` into ``out_dir``.

    Writes ``summary.json`` and ``accesses.csv`` (data); the human report is drawn from them by
    :func:`hwsim.render.report.write_report` (``hwsim compare`` calls both). Training runs on
    ``device`` with ``threads`` torch threads per run, ``workers`` runs at once
    (:func:`train_runs`). Callbacks feed progress displays: ``on_train_start(rule, seed,
    epochs)`` and ``on_epoch(row)`` (one worker), ``on_trained(rule, seed)``,
    ``on_simulated(chip, rule)``. Returns the summary document, which records the environment
    (each run's ``result.json`` records its own).
    """
    from hwsim.sim.api import simulate, unsupported_reason
    from hwsim.sim.chip import load_chip
    from hwsim.sim.explain import gaps_to_bp
    from models.environment import environment
    from models.training import load_data

    out = Path(out_dir)
    chips = [load_chip(p) for p in experiment.chips]  # validate everything before any work
    names = [c.name for c in chips]
    if len(set(names)) != len(names):
        raise InputError(f"two chip files share a name: {', '.join(names)}")
    refused = [
        reason
        for chip in chips
        for rule in experiment.rules
        if (reason := unsupported_reason(chip, rule)) is not None
    ]
    if refused:  # before any training: a rule this chip cannot run is bad input
        raise InputError("\n".join(refused))
    configs = {
        (r, s): experiment.train_config(r, s) for r in experiment.rules for s in experiment.seeds
    }
    data = load_data(next(iter(configs.values())))
    _prepare_out(out, experiment, force)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "experiment.yaml", yaml.safe_dump(experiment.to_dict(), sort_keys=False))
    for chip, path in zip(chips, experiment.chips, strict=True):
        write_atomic(out / "chips" / f"{chip.name}.yaml", Path(path).read_bytes())

    jobs = {
        key: (config, out / "runs" / f"{rule_dirname(key[0])}-seed{key[1]}")
        for key, config in configs.items()
    }
    trained = train_runs(
        jobs,
        workers=workers,
        device=device,
        threads=threads,
        on_train_start=on_train_start,
        on_epoch=on_epoch,
        on_trained=on_trained,
    )
    runs: dict[str, list[Any]] = {r: [] for r in experiment.rules}
    for (rule, _), result in trained.items():
        runs[rule].append(result)

    simulations: dict[str, dict[str, dict[str, Any]]] = {}
    results_by_chip: dict[str, dict[str, Any]] = {}
    for chip in chips:
        simulations[chip.name] = {}
        results = results_by_chip[chip.name] = {}
        for rule in experiment.rules:
            workload = runs[rule][0].out_dir / "workload.json"
            results[rule] = simulate(workload, chip, [rule], timeline=True).rules[rule]
            if on_simulated:
                on_simulated(chip.name, rule)
        # Each rule simulates its own run's workload; BP's gap to each is explained across them.
        gaps = gaps_to_bp(results, chip)
        for rule, result in results.items():
            sim = result.to_dict()
            if rule in gaps:
                sim["gap_to_bp"] = gaps[rule].to_dict()
            write_atomic(
                out / "simulation" / chip.name / f"{rule_dirname(rule)}.json",
                json.dumps(sim) + "\n",
            )
            simulations[chip.name][rule] = sim

    summary = build_summary(experiment, data, runs, chips, simulations)
    summary["chip_survey"] = chip_survey(experiment, runs, chips, simulations, results_by_chip)
    env = environment(device, threads)  # threads: what each run trained with
    summary["environment"] = {**env, "workers": workers}
    write_atomic(out / "accesses.csv", accesses_csv(summary))
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def chip_survey(
    experiment: Experiment,
    runs: dict[str, list[Any]],
    chips: list[Any],
    simulations: dict[str, dict[str, dict[str, Any]]],
    results_by_chip: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every rule's workload on every shipped chip (and the experiment's): does BP's cost change?

    One entry per chip, the experiment's chips first: name, description, whether the report
    covers it in full, and per rule its energy and latency per step, its ratios to BP and the
    leading cause of BP's energy gap; on a chip that regenerates its feedback (PRNG), also the
    DRAM accesses per step that saves against storing it in DRAM (``prng_against_stored``,
    :mod:`hwsim.sim.feedback_storage`). The other shipped chips are simulated here without a
    timeline; nothing else of them is written. ``results_by_chip``: the experiment's chips'
    simulation results (``RuleResult`` by rule), reused rather than simulated again.
    """
    from hwsim.core.resources import CHIPS_DIR, shipped_chip_names
    from hwsim.sim.api import simulate, unsupported_reason
    from hwsim.sim.chip import load_chip
    from hwsim.sim.explain import gaps_to_bp
    from hwsim.sim.feedback_storage import prng_against_stored

    results_by_chip = dict(results_by_chip)  # the survey's chips join the caller's, locally
    entries = []
    for chip in chips:
        entries.append(_survey_entry(chip, simulations[chip.name], in_report=True))
    covered = {c.name for c in chips}
    survey_chips = []
    for name in shipped_chip_names():
        chip = load_chip(CHIPS_DIR / f"{name}.yaml")
        if chip.name in covered:
            continue
        survey_chips.append(chip)
        unsupported = {
            rule: reason
            for rule in experiment.rules
            if (reason := unsupported_reason(chip, rule)) is not None
        }
        results = {
            rule: simulate(runs[rule][0].out_dir / "workload.json", chip, [rule]).rules[rule]
            for rule in experiment.rules
            if rule not in unsupported
        }
        gaps = gaps_to_bp(results, chip)
        sims = {}
        for rule, result in results.items():
            sims[rule] = result.to_dict()
            if rule in gaps:
                sims[rule]["gap_to_bp"] = gaps[rule].to_dict()
        results_by_chip[chip.name] = results
        entry = _survey_entry(chip, sims, in_report=False)
        if unsupported:
            entry["unsupported"] = unsupported
        entries.append(entry)
    for entry, chip in zip(entries, [*chips, *survey_chips], strict=True):
        savings = [
            saving
            for rule in experiment.rules
            for saving in prng_against_stored(
                runs[rule][0].out_dir / "workload.json",
                chip,
                [rule],
                simulated=results_by_chip[chip.name],
            )
        ]
        if savings:
            entry["prng_against_stored"] = [s.to_dict() for s in savings]
    return entries


def _survey_entry(chip: Any, sims: dict[str, dict[str, Any]], in_report: bool) -> dict[str, Any]:
    bp = sims.get("bp")
    rules = {}
    for rule, sim in sims.items():
        energy, latency = sim["energy_pj"]["total"], sim["latency_cycles"]
        gap = sim.get("gap_to_bp")
        rules[rule] = {
            "energy_pj": energy,
            "latency_cycles": latency,
            "latency_s": sim["latency_s"],
            "energy_over_floor": sim.get("energy_over_floor"),
            "energy_vs_bp": _ratio(energy, bp["energy_pj"]["total"]) if bp else None,
            "latency_vs_bp": _ratio(latency, bp["latency_cycles"]) if bp else None,
            "gap_leading_cause": gap["energy_pj"]["leading_cause"] if gap else None,
        }
    return {
        "chip": chip.name,
        "description": chip.description,
        "in_report": in_report,
        "rules": rules,
    }


def _training_block(rule: str, results: list[Any], out: Path) -> dict[str, Any]:
    finals = [r.final_test_accuracy for r in results if r.final_test_accuracy is not None]
    bests = [r.best_test_accuracy for r in results if r.best_test_accuracy is not None]
    last_rows = [
        next(row for row in reversed(r.metrics) if not row.get("diverged")) for r in results
    ]
    layers = last_rows[0]["alignment_deg"].keys()
    statuses = {r.status for r in results}
    final, final_std = mean_std(finals)
    best, best_std = mean_std(bests)
    return {
        "status": statuses.pop() if len(statuses) == 1 else "partly-diverged",
        "test_accuracy": {
            "final": final,
            "final_std": final_std,
            "best": best,
            "best_std": best_std,
            "per_seed_final": [r.final_test_accuracy for r in results],
        },
        "train_accuracy_final": mean_std(row["train_accuracy"] for row in last_rows)[0],
        "final_alignment_deg": {
            layer: mean_std(row["alignment_deg"][layer] for row in last_rows)[0] for layer in layers
        },
        "epochs_completed": min(r.epochs_completed for r in results),
        "run_dirs": [str(r.out_dir.relative_to(out)) for r in results],
    }


def _weight_bits_by_level(counts: dict[str, Any], directions: tuple[str, ...]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for level, tensors in counts.items():
        bits = sum(
            entry["bits"]
            for tensor in WEIGHT_TENSORS
            for phase in tensors.get(tensor, {}).values()
            for direction, entry in phase.items()
            if direction in directions
        )
        if bits:
            totals[level] = bits
    return totals


SIMULATION_FIELDS = (
    "counts",
    "weight_transport_bits",
    "sync_write_bits",
    "feedback_read_bits",
    "feedback_generated_values",
    "macs",
    "energy_pj",
    "latency_cycles",
    "latency_s",
    "init",
    "run_totals",
    "floor_pj",
    "energy_over_floor",
)
#: Copied when the simulation has them: ``gap_to_bp`` exists for every rule but BP, when BP is
#: compared.
OPTIONAL_SIMULATION_FIELDS = ("gap_to_bp",)


def build_summary(
    experiment: Experiment,
    data: Any,
    runs: dict[str, list[Any]],
    chips: list[Any],
    simulations: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    """Assemble the summary document of docs/compare.md from training and simulation results."""
    out = next(iter(runs.values()))[0].out_dir.parent.parent
    training = {rule: _training_block(rule, results, out) for rule, results in runs.items()}
    chip_blocks: dict[str, Any] = {}
    for chip in chips:
        rules: dict[str, Any] = {}
        for rule in experiment.rules:
            sim = simulations[chip.name][rule]
            block = dict(training[rule])
            block["weight_reads_bits"] = _weight_bits_by_level(sim["counts"], ("read", "transport"))
            block["weight_writes_bits"] = _weight_bits_by_level(sim["counts"], ("write",))
            block.update({key: sim[key] for key in SIMULATION_FIELDS})
            block.update({key: sim[key] for key in OPTIONAL_SIMULATION_FIELDS if key in sim})
            # the step split by layer (accesses.csv's rows, the report's per-layer table)
            for key in ("counts_by_layer", "energy_by_layer_pj"):
                if key in sim:
                    block[key] = sim[key]
            rules[rule] = block
        if "bp" in rules:
            bp = rules["bp"]
            for block in rules.values():
                block["ratios_to_bp"] = _ratios(block, bp)
        chip_blocks[chip.name] = {
            "path": str(chip.path),
            "copy": f"chips/{chip.name}.yaml",
            "clock_hz": chip.clock_hz,
            "rules": rules,
        }
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "version": SUMMARY_VERSION,
        "hwsim_version": __version__,
        "experiment": experiment.to_dict(),
        "data": {
            "dataset": data.name,
            "train_samples": len(data.y_train),
            "test_samples": len(data.y_test),
        },
        "seeds": list(experiment.seeds),
        "rule_order": list(experiment.rules),
        "chip_order": [c.name for c in chips],
        "chips": chip_blocks,
    }
    if len(chips) == 1:
        summary["rules"] = chip_blocks[chips[0].name]["rules"]
    return summary


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _ratios(block: dict[str, Any], bp: dict[str, Any]) -> dict[str, float | None]:
    run, bp_run = block.get("run_totals"), bp.get("run_totals")
    return {
        "energy_per_step": _ratio(block["energy_pj"]["total"], bp["energy_pj"]["total"]),
        "energy_run": _ratio(run["energy_pj"]["total"], bp_run["energy_pj"]["total"])
        if run and bp_run
        else None,
        "latency_per_step": _ratio(block["latency_cycles"], bp["latency_cycles"]),
        "final_test_accuracy": _ratio(
            block["test_accuracy"]["final"], bp["test_accuracy"]["final"]
        ),
    }


def accesses_csv(summary: dict[str, Any]) -> str:
    """The memory-access report: one row per chip × rule × level × tensor × layer × phase ×
    direction (``layer`` is the last column). A rule block without ``counts_by_layer`` gives
    its aggregated ``counts`` with layer ``""``; the rows of one (chip, rule, level, tensor,
    phase, direction) always add up to that entry of ``counts``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for chip_name in summary["chip_order"]:
        rules = summary["chips"][chip_name]["rules"]
        for rule in summary["rule_order"]:
            block = rules[rule]
            by_layer = block.get("counts_by_layer") or {"": block["counts"]}
            for level, tensors in block["counts"].items():
                for tensor in tensors:
                    for layer, counts in by_layer.items():
                        for phase, directions in counts.get(level, {}).get(tensor, {}).items():
                            for direction, c in directions.items():
                                writer.writerow(
                                    [
                                        chip_name,
                                        rule,
                                        level,
                                        tensor,
                                        phase,
                                        direction,
                                        c["bits"],
                                        c["words"],
                                        c["accesses"],
                                        c["energy_pj"],
                                        layer,
                                    ]
                                )
    return buffer.getvalue()
