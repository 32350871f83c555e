"""`hwsim compare`: train every rule, simulate each on every chip, write one comparison.

The run directory and ``summary.json`` are documented in docs/compare.md. Everything is
resumable and nothing is trained twice: each training run lives in a directory keyed by a
hash of what determines it, resumes from its checkpoint, and once finished is reused — read
without torch — by every later call whose settings match, whatever its chips. Pricing a chip
is cached the same way (``cache/``), keyed by the chip's contents, the workloads and the
simulator's code. The summary, CSV and report are written atomically at the end.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from hwsim import __version__
from hwsim.core.errors import InputError
from hwsim.core.files import claim_out_dir, read_json, write_atomic
from hwsim.core.outputs import SUMMARY_FORMAT, SUMMARY_VERSION, WEIGHT_TENSORS
from hwsim.core.rules import rule_dirname
from hwsim.core.runs import finished_run
from hwsim.core.stats import mean_std
from hwsim.core.workload import UPDATE_SPARSITY_MEASURED, load_workload
from hwsim.core.yaml_lines import load_yaml_text
from hwsim.experiments.experiment import Experiment, training_identity

#: The wear of a (chip, rule, level, tensor) (``RuleResult.wear``, :mod:`hwsim.sim.wear`), on
#: the non-init write rows of that tensor in a non-volatile level; empty on every other row.
WEAR_COLUMNS = (
    "writes_per_cell_per_step",
    "max_writes_per_cell_per_step",
    "most_written_layer",
    "wear_measured",
    "endurance_cycles",
    "steps_to_endurance",
    "runs_to_endurance",
)
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
    "layer",  # the columns up to here keep the positions they had before the wear columns
    *WEAR_COLUMNS,
)


#: Top-level entries of a compare run that ``--force`` keeps: trained runs, keyed by what
#: determines them (:meth:`Experiment.run_key`), so a run that matches is never trained twice,
#: and the environment of the call that trained them.
ENVIRONMENT_FILE = "environment.json"
KEPT_ON_FORCE = ("runs", ENVIRONMENT_FILE)


def _prepare_out(out: Path, experiment: Experiment, force: bool) -> None:
    """Claim ``out`` for ``experiment``'s comparison.

    A compare run of the same training settings (dataset, network, quantization, training) is
    taken as it is, whatever its chips, rules or seeds: finished runs are reused, missing ones
    trained, the chips simulated again and the report written again. Other training settings
    are refused without ``force``; with it, what hwsim wrote is removed except the trained runs.
    """
    identity = experiment.training_identity()
    previous_path = out / "experiment.yaml"
    if not force and previous_path.is_file():
        try:
            previous = training_identity(load_yaml_text(previous_path.read_text("utf-8"), ""))
        except (InputError, OSError, UnicodeDecodeError):
            previous = None
        if previous != identity:
            changed = _differences(previous, identity) if previous is not None else []
            what = f" ({'; '.join(changed)})" if changed else ""
            raise InputError(
                f"{out} holds a compare run with other training settings{what}; pass --force to "
                "replace its report (trained runs are kept, and reused when they match), or "
                "choose another --out"
            )
    claim_out_dir(
        out,
        what="compare run",
        identity_file="experiment.yaml",
        identity=identity,
        load=lambda text: training_identity(load_yaml_text(text, out / "experiment.yaml")),
        force=force,
        keep=KEPT_ON_FORCE,
    )


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``section.key: old → new`` for each training setting that differs."""
    changes = []
    for section, values in new.items():
        before = old.get(section) if isinstance(old.get(section), dict) else {}
        for key, value in (values or {}).items():
            if before.get(key, "—") != value:
                changes.append(f"{section}.{key}: {before.get(key, '—')} → {value}")
    return changes


def default_workers(device: str | None = "cpu") -> int:
    """How many training runs ``hwsim compare`` runs at once by default: one per core the
    process may use on the CPU (each with one torch thread), one on a GPU."""
    from hwsim.experiments.executors import available_cores
    from hwsim.models.device import resolve_device

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
    from hwsim.core.interrupts import interrupts_deferred
    from hwsim.experiments.executors import FailedPointsError, ProcessExecutor

    with interrupts_deferred():  # torch loads only when something trains
        from hwsim.models.training import torch_threads, train, train_job

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
                failed.append((Path(outcome.item[2]).name, outcome.error))
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
    chip_overrides: Sequence[str] = (),
    train: bool = True,
    device: str | None = "cpu",
    threads: int | None = 1,
    workers: int | None = 1,
    on_train_start: Callable[[str, int, int], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_trained: Callable[[str, int], None] | None = None,
    on_simulated: Callable[[str, str], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train, simulate and write the comparison of ``experiment`` into ``out_dir``.

    Each rule × seed trains into ``runs/<rule>-seed<k>-<key>`` (:meth:`Experiment.run_key`);
    a finished run there is reused without loading torch, so changing only the chips (or
    rules, or seeds: the runs that match) re-prices in seconds. ``train=False`` refuses to
    train (``hwsim report --chip``): a run that is missing is an :class:`InputError`.
    ``chip_overrides``: ``key.path=value`` settings applied to every chip (``--set``).

    Writes ``summary.json``, ``accesses.csv`` and ``actions.csv`` (data); the human report is
    drawn from them by :func:`hwsim.render.report.write_report` (``hwsim compare`` calls both).
    Training runs on ``device`` with ``threads`` torch threads per run, ``workers`` runs at once
    (:func:`train_runs`; None: :func:`default_workers`). Callbacks feed progress displays:
    ``on_train_start(rule, seed, epochs)`` and ``on_epoch(row)`` (one worker),
    ``on_trained(rule, seed)``, ``on_simulated(chip, rule)``, and once, before any training,
    ``on_plan(reused, to_train)`` (how many runs are reused and how many train). Returns the
    summary document, which records where the runs were trained (each run's ``result.json``
    records its own).
    """
    from hwsim.sim.actions import ActionRow, actions_csv
    from hwsim.sim.api import unsupported_reason
    from hwsim.sim.chip import load_chip

    out = Path(out_dir)
    # every chip is checked before any work
    chips = [load_chip(p, overrides=chip_overrides) for p in experiment.chips]
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
    run_dirs = {
        (r, s): out / "runs" / experiment.run_dir_name(r, s)
        for r in experiment.rules
        for s in experiment.seeds
    }
    done = {key: result for key, path in run_dirs.items() if (result := finished_run(path))}
    missing = [key for key in run_dirs if key not in done]
    if missing and not train:
        names_missing = ", ".join(run_dirs[key].name for key in missing)
        raise InputError(
            f"{out}: no finished training run for {names_missing}; `hwsim report` only re-prices "
            "trained runs: train them with `hwsim compare` (same experiment, --out "
            f"{out})"
        )
    if missing:  # a GPU this machine lacks is bad input before any work
        from hwsim.models.device import resolve_device

        resolve_device(device)
        workers = workers if workers is not None else default_workers(device)
    _prepare_out(out, experiment, force)
    if on_plan:
        on_plan(len(done), len(missing))
    write_atomic(
        out / "experiment.yaml", yaml.safe_dump(experiment.to_dict(base=out), sort_keys=False)
    )
    _write_chip_copies(out, chips)

    if missing:
        environment = _environment(out, {}, (device, threads), workers)
        jobs = {key: (experiment.train_config(*key), run_dirs[key]) for key in missing}
        done.update(
            train_runs(
                jobs,
                workers=workers or 1,
                device=device,
                threads=threads,
                on_train_start=on_train_start,
                on_epoch=on_epoch,
                on_trained=on_trained,
            )
        )
    runs: dict[str, list[Any]] = {r: [] for r in experiment.rules}
    for key in run_dirs:  # the experiment's order, whatever was reused
        runs[key[0]].append(done[key])
    if not missing:
        environment = _environment(out, runs, None, workers)
    workloads = {rule: results[0].out_dir / "workload.json" for rule, results in runs.items()}

    simulations: dict[str, dict[str, dict[str, Any]]] = {}
    entries = []
    actions: list[list[Any]] = []
    for chip in chips:
        priced = _priced(out, chip, workloads, timeline=True)
        simulations[chip.name] = priced["sims"]
        actions += priced["actions"]
        for rule, sim in priced["sims"].items():
            write_atomic(
                out / "simulation" / chip.name / f"{rule_dirname(rule)}.json",
                json.dumps(sim) + "\n",
            )
            if on_simulated:
                on_simulated(chip.name, rule)
        entries.append(_survey_entry(chip, priced, in_report=True))

    summary = build_summary(experiment, _data_block(experiment, runs), runs, chips, simulations)
    summary["chip_survey"] = entries + chip_survey(out, workloads, chips)
    summary["environment"] = environment
    write_atomic(out / "accesses.csv", accesses_csv(summary))
    write_atomic(out / "actions.csv", actions_csv(ActionRow(*row) for row in actions))
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _write_chip_copies(out: Path, chips: list[Any]) -> None:
    """Each chip's file as priced into ``chips/<name>.yaml``; what an earlier call wrote for
    chips no longer compared (their copies and simulations) is removed."""
    names = {c.name for c in chips}
    for old in sorted((out / "chips").glob("*.yaml")):
        if old.stem not in names:
            old.unlink()
    for old in sorted((out / "simulation").glob("*/*.json")):
        if old.parent.name not in names:
            old.unlink()
            with contextlib.suppress(OSError):
                old.parent.rmdir()
    for chip in chips:
        write_atomic(out / "chips" / f"{chip.name}.yaml", _chip_text(chip))


def _chip_text(chip: Any) -> bytes | str:
    """The chip as priced: its file as written (comments and all) when that is what was priced,
    else (it ``extends:`` another, or ``--set`` changed it) its resolved document."""
    from hwsim.sim.chip import chip_yaml

    raw = Path(chip.path).read_bytes()
    with contextlib.suppress(InputError, UnicodeDecodeError):
        if load_yaml_text(raw.decode("utf-8"), chip.path) == chip.document:
            return raw
    return chip_yaml(chip)


def _environment(
    out: Path, runs: dict[str, list[Any]], trained: Any | None, workers: int | None
) -> dict[str, Any]:
    """Where the runs were trained. A call that trains (``trained``: the device and threads it
    uses) records its environment in ``environment.json``, before training; a call that only
    re-prices reads it back (no device is used, and torch is not imported), or, for a run
    directory without it, the first run's ``result.json``'s."""
    path = out / ENVIRONMENT_FILE
    if trained is not None:
        from hwsim.models.environment import environment

        recorded = {**environment(*trained), "workers": workers or 1}
        write_atomic(path, json.dumps(recorded, indent=2) + "\n")
        return recorded
    for source, what in (
        (path, "the environment of a compare run"),
        (next(iter(runs.values()))[0].out_dir / "result.json", "a run's result"),
    ):
        with contextlib.suppress(InputError, AttributeError):
            found = read_json(source, what)
            found = found if source == path else found.get("environment")
            if isinstance(found, dict):
                return dict(found)
    return {}


def _data_block(experiment: Experiment, runs: dict[str, list[Any]]) -> dict[str, Any]:
    """Dataset name and sizes, from the first run's ``result.json`` (runs before it recorded
    them: from the dataset itself)."""
    first = next(iter(runs.values()))[0]
    recorded = read_json(first.out_dir / "result.json", "a finished run's result").get("data")
    if isinstance(recorded, dict) and {"dataset", "train_samples", "test_samples"} <= set(recorded):
        return {k: recorded[k] for k in ("dataset", "train_samples", "test_samples")}
    from hwsim.models.training import load_data

    rule, seed = experiment.rules[0], experiment.seeds[0]
    data = load_data(experiment.train_config(rule, seed))
    return {
        "dataset": data.name,
        "train_samples": len(data.y_train),
        "test_samples": len(data.y_test),
    }


def price_chip(chip: Any, workloads: dict[str, Path], timeline: bool = False) -> dict[str, Any]:
    """Every rule's workload simulated on ``chip``: ``sims`` (rule → the simulation's JSON,
    with ``gap_to_bp`` for every rule but BP when BP is there), ``unsupported`` (rule →
    why the chip cannot run it), ``prng_against_stored`` (chips that regenerate feedback) and
    ``actions`` (every rule's action counts, :mod:`hwsim.sim.actions`, one list of values per
    row)."""
    from hwsim.sim.actions import rule_actions
    from hwsim.sim.api import simulate, unsupported_reason
    from hwsim.sim.explain import gaps_to_bp
    from hwsim.sim.feedback_storage import prng_against_stored

    unsupported = {
        rule: reason for rule in workloads if (reason := unsupported_reason(chip, rule)) is not None
    }
    results = {
        rule: simulate(workload, chip, [rule], timeline=timeline).rules[rule]
        for rule, workload in workloads.items()
        if rule not in unsupported
    }
    # Each rule simulates its own run's workload; BP's gap to each is explained across them.
    gaps = gaps_to_bp(results, chip)
    sims = {}
    for rule, result in results.items():
        sims[rule] = result.to_dict()
        if rule in gaps:
            sims[rule]["gap_to_bp"] = gaps[rule].to_dict()
    savings = [
        saving.to_dict()
        for rule in results
        for saving in prng_against_stored(workloads[rule], chip, [rule], simulated=results)
    ]
    actions = [
        list(row.values()) for result in results.values() for row in rule_actions(result, chip)
    ]
    return {
        "sims": sims,
        "unsupported": unsupported,
        "prng_against_stored": savings,
        "actions": actions,
    }


def _priced(out: Path, chip: Any, workloads: dict[str, Path], timeline: bool) -> dict[str, Any]:
    """:func:`price_chip`, reused from ``out/cache/`` when nothing it depends on changed: the
    chip's validated contents, the workload files, the simulator's code (see
    :func:`_pricing_key`)."""
    key = _pricing_key(chip, workloads, timeline)
    path = out / "cache" / f"{chip.name}.json"
    if path.is_file():
        with contextlib.suppress(ValueError, OSError, InputError):
            cached = read_json(path, "a cached pricing")
            if isinstance(cached, dict) and cached.get("key") == key:
                return dict(cached["priced"])
    priced = price_chip(chip, workloads, timeline=timeline)
    write_atomic(path, json.dumps({"key": key, "priced": priced}) + "\n")
    return priced


def _pricing_key(chip: Any, workloads: dict[str, Path], timeline: bool) -> str:
    """A hash of what a chip's pricing depends on: every validated field of the chip (not its
    path, comments or sources), each rule's workload file, and the source of the simulator
    and of this module — a changed formula must never be answered from the cache."""
    fields = {
        k: v
        for k, v in dataclasses.asdict(chip).items()
        if k not in ("path", "lines", "sources", "document")
    }
    digest = hashlib.sha256()
    digest.update(json.dumps(fields, sort_keys=True, default=repr).encode())
    digest.update(json.dumps([list(workloads), timeline, __version__]).encode())
    for workload in workloads.values():
        digest.update(Path(workload).read_bytes())
    digest.update(_code_fingerprint().encode())
    return digest.hexdigest()


@functools.cache
def _code_fingerprint() -> str:
    import hwsim.core
    import hwsim.sim

    digest = hashlib.sha256()
    for package in (hwsim.sim, hwsim.core):
        for source in sorted(Path(package.__path__[0]).glob("*.py")):
            digest.update(source.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def chip_survey(out: Path, workloads: dict[str, Path], chips: list[Any]) -> list[dict[str, Any]]:
    """Every rule's workload on every other shipped chip: does BP's cost change?

    One entry per shipped chip not among ``chips`` (the experiment's own, whose entries the
    caller makes): name, description, ``in_report: false``, the chip's area, and per rule its
    energy and latency per step, its ratios to BP, the leading cause of BP's energy gap and the
    silicon of the rule's own stored tensors (``own_silicon``); the rules the
    chip cannot run under ``unsupported``; on a chip that regenerates its feedback (PRNG),
    also the DRAM accesses per step that saves against storing it in DRAM
    (``prng_against_stored``, :mod:`hwsim.sim.feedback_storage`). Nothing else of these chips
    is written; their pricing is cached in ``out/cache/`` like the experiment's chips'.
    """
    from hwsim.core.resources import CHIPS_DIR, shipped_chip_names
    from hwsim.sim.chip import load_chip

    covered = {c.name for c in chips}
    entries = []
    for name in shipped_chip_names():
        chip = load_chip(CHIPS_DIR / f"{name}.yaml")
        if chip.name in covered:
            continue
        entries.append(_survey_entry(chip, _priced(out, chip, workloads, timeline=False), False))
    return entries


def _survey_entry(chip: Any, priced: dict[str, Any], in_report: bool) -> dict[str, Any]:
    sims = priced["sims"]
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
            # the silicon of the rule's own stored tensors (BP's mirror, B…), hwsim.sim.area
            "own_silicon": sim.get("own_silicon") or {},
        }
    entry: dict[str, Any] = {
        "chip": chip.name,
        "description": chip.description,
        "in_report": in_report,
        "area_mm2": chip.area_mm2,
        "rules": rules,
    }
    if priced["unsupported"]:
        entry["unsupported"] = priced["unsupported"]
    if priced["prng_against_stored"]:
        entry["prng_against_stored"] = priced["prng_against_stored"]
    return entry


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


def _read_sparsity(path: Path) -> dict[str, Any] | None:
    """The ``update_sparsity`` of one run's ``workload.json``, read and checked by the workload
    contract (:func:`hwsim.core.workload.load_workload`; None: not measured)."""
    measured = load_workload(path).update_sparsity
    if measured is None:
        return None
    layers = {
        name: {
            "fractions": list(stats.changed_fraction),
            "steps": list(stats.steps),
            "most": stats.max_changes_per_weight,
            "mean_changes": stats.mean_changes_per_weight,
            "weights": stats.weights,
            "levels": stats.levels,
        }
        for name, stats in measured.layers.items()
    }
    return {"how": UPDATE_SPARSITY_MEASURED, "batch_size": measured.batch_size, "layers": layers}


def update_sparsity_block(seeds: Sequence[int], results: list[Any], out: Path) -> dict[str, Any]:
    """One rule's measured update sparsity over its seeds, from each run's ``workload.json``
    (its optional ``update_sparsity``; docs/compare.md): per layer the run's changed fraction
    (epochs weighted by their steps) as mean ± sample std over the seeds that measured it, the
    per-epoch means, and the most-changed weight. ``layers`` is None when no seed measured it.
    The simulation priced the first seed's workload (``simulated_seed``)."""
    measured: dict[int, dict[str, Any]] = {}
    for seed, result in zip(seeds, results, strict=True):
        found = _read_sparsity(result.out_dir / "workload.json")
        if found is not None:
            measured[seed] = found
    first = results[0].out_dir
    block: dict[str, Any] = {
        "measured": bool(measured),
        "seeds": sorted(measured, key=list(seeds).index),
        "seeds_without": [s for s in seeds if s not in measured],
        "simulated_seed": seeds[0],
        "simulated_run": first.relative_to(out).as_posix(),
        "simulated_measured": seeds[0] in measured,
        "how": next((m["how"] for m in measured.values() if m["how"] is not None), None),
        "batch_size": next(
            (m["batch_size"] for m in measured.values() if m["batch_size"] is not None), None
        ),
        "layers": None,
    }
    if not measured:
        block["note"] = (
            "no run of this rule recorded update_sparsity in its workload.json (trained before "
            "hwsim measured it): the wear assumes that every update programs every cell"
        )
        return block
    names: list[str] = []
    for found in measured.values():
        names += [n for n in found["layers"] if n not in names]
    layers = {}
    for name in names:
        runs = {s: m["layers"][name] for s, m in measured.items() if name in m["layers"]}
        run_fractions = [
            sum(f * n for f, n in zip(r["fractions"], r["steps"], strict=True)) / sum(r["steps"])
            if sum(r["steps"])
            else None
            for r in runs.values()
        ]
        mean, std = mean_std(run_fractions)
        epochs = max(len(r["fractions"]) for r in runs.values())
        per_epoch = [  # an epoch of 0 steps was not measured: left out, not counted as 0
            mean_std(
                r["fractions"][e]
                for r in runs.values()
                if e < len(r["fractions"]) and r["steps"][e]
            )
            for e in range(epochs)
        ]
        # the most-changed weight's changes per step: its cell's program operations per update
        rates = [r["most"] / sum(r["steps"]) if sum(r["steps"]) else None for r in runs.values()]
        known = [v for v in rates if v is not None]
        some = next(iter(runs.values()))
        layers[name] = {
            "weights": some["weights"],
            "levels": some["levels"],
            "seeds": list(runs),
            "changed_fraction": {"mean": mean, "std": std, "per_seed": run_fractions},
            "changed_fraction_per_epoch": {
                "mean": [m for m, _ in per_epoch],
                "std": [s for _, s in per_epoch],
            },
            "steps": [r["steps"] for r in runs.values()],
            "max_changes_per_weight": {
                "max": max(r["most"] for r in runs.values()),
                "per_seed": [r["most"] for r in runs.values()],
            },
            "max_change_rate": {"max": max(known) if known else None, "per_seed": rates},
            "mean_changes_per_weight": mean_std(r["mean_changes"] for r in runs.values())[0],
        }
    block["layers"] = layers
    block["all_layers"] = _all_layers(measured)
    return block


def _all_layers(measured: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Every layer together: per seed the fraction of all the network's weights an update
    changes (layers weighted by their weight counts), per epoch and over the run, mean ± sample
    std over the seeds. None when a layer lacks its weight count."""
    per_seed_epochs: list[list[float | None]] = []
    per_seed_run: list[float | None] = []
    total = 0
    for found in measured.values():
        layers = found["layers"].values()
        if not all(isinstance(v["weights"], int) and v["weights"] > 0 for v in layers):
            return None
        total = sum(v["weights"] for v in layers)
        epochs = min(len(v["fractions"]) for v in layers)
        per_seed_epochs.append(
            [
                sum(v["fractions"][e] * v["weights"] for v in layers) / total
                if all(v["steps"][e] for v in layers)
                else None  # not measured in that epoch
                for e in range(epochs)
            ]
        )
        changed = sum(
            f * n * v["weights"]
            for v in layers
            for f, n in zip(v["fractions"], v["steps"], strict=True)
        )
        steps = sum(v["weights"] * sum(v["steps"]) for v in layers)
        per_seed_run.append(changed / steps if steps else None)
    epochs = max(len(e) for e in per_seed_epochs)
    per_epoch = [mean_std(e[i] for e in per_seed_epochs if i < len(e)) for i in range(epochs)]
    mean, std = mean_std(per_seed_run)
    return {
        "weights": total,
        "changed_fraction": {"mean": mean, "std": std, "per_seed": per_seed_run},
        "changed_fraction_per_epoch": {
            "mean": [m for m, _ in per_epoch],
            "std": [s for _, s in per_epoch],
        },
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
#: compared; ``wear`` (null on a chip without non-volatile levels) since hwsim priced wear.
OPTIONAL_SIMULATION_FIELDS = ("gap_to_bp", "wear")


def build_summary(
    experiment: Experiment,
    data: dict[str, Any],
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
        "experiment": experiment.to_dict(base=out),  # as experiment.yaml names its chips
        "data": data,
        "seeds": list(experiment.seeds),
        "rule_order": list(experiment.rules),
        "chip_order": [c.name for c in chips],
        "chips": chip_blocks,
    }
    if len(chips) == 1:
        summary["rules"] = chip_blocks[chips[0].name]["rules"]
    summary["update_sparsity"] = {
        rule: update_sparsity_block(experiment.seeds, results, out)
        for rule, results in runs.items()
    }
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


def _wear_cells(wear: dict[str, Any] | None) -> dict[tuple[str, str], list[Any]]:
    """(level, tensor) → the :data:`WEAR_COLUMNS` cells of its write rows."""
    out: dict[tuple[str, str], list[Any]] = {}
    for t in (wear or {}).get("tensors") or []:
        out[t["level"], t["tensor"]] = [
            "" if t.get(key) is None else t[key]
            for key in (
                "mean_writes_per_cell_per_step",
                "max_writes_per_cell_per_step",
                "max_layer",
            )
        ] + [
            "true" if t.get("measured") else "false",
            *("" if t.get(key) is None else t[key] for key in WEAR_COLUMNS[4:]),
        ]
    return out


def accesses_csv(summary: dict[str, Any]) -> str:
    """The memory-access report: one row per chip × rule × level × tensor × layer × phase ×
    direction. A rule block without ``counts_by_layer`` gives its aggregated ``counts`` with
    layer ``""``; the rows of one (chip, rule, level, tensor, phase, direction) always add up
    to that entry of ``counts``. The :data:`WEAR_COLUMNS` after ``layer`` carry the rule's
    ``wear`` of the (level, tensor) on its write rows outside init, where the level is
    non-volatile; they are empty on every other row."""
    from hwsim.sim.dataflow import INIT_PHASE

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    blank = [""] * len(WEAR_COLUMNS)
    for chip_name in summary["chip_order"]:
        rules = summary["chips"][chip_name]["rules"]
        for rule in summary["rule_order"]:
            block = rules[rule]
            by_layer = block.get("counts_by_layer") or {"": block["counts"]}
            wear = _wear_cells(block.get("wear"))
            for level, tensors in block["counts"].items():
                for tensor in tensors:
                    worn = wear.get((level, tensor), blank)
                    for layer, counts in by_layer.items():
                        for phase, directions in counts.get(level, {}).get(tensor, {}).items():
                            for direction, c in directions.items():
                                written = direction == "write" and phase != INIT_PHASE
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
                                        *(worn if written else blank),
                                    ]
                                )
    return buffer.getvalue()
