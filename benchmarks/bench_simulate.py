"""Benchmark the simulator: the compare re-price, ResNet-18, and the mapper's search per layer.

Run: ``python benchmarks/bench_simulate.py [--chip FILE] [--repeats N] [--json FILE]
[--sections reprice,resnet,search,scaling]``. Every timed case runs once to warm up (imports,
scipy's HiGHS), then ``--repeats`` times round-robin, all cases side by side in the one run, so
that the machine's load falls on them alike; each row is the median. The mapper caches its
search across calls in a process (generated loop nests, priced contexts, solved programs:
``hwsim.sim.mapper.clear_caches``): every timed call starts from empty caches, as a fresh
``hwsim simulate`` would, except the one case marked warm. Sections:

``reprice``
    The simulator work of ``hwsim compare`` on the default experiment after one chip value is
    edited: every rule's workload (the default MLP 784-256×5-10, Adam, batch 64, its epochs of
    the saved default comparison, docs/results/compare-default.json) priced on the edited chip
    (the experiment's ``split_cores``, one memory's read energy changed each repetition), which
    is what the edit re-simulates (every other chip comes from ``cache/``); and the same on
    every shipped chip (a cold cache). Target ≤ 4 s on 2 cores.
``resnet``
    ResNet-18 (``--model resnet18``), batch 128, rules bp, fa, ifa in one ``simulate`` call on
    ``--chip``. Target ≤ 2 s. The same call again right after, with the caches the first left
    (warm); and the wide MLP of the earlier version of this benchmark.
``search``
    The mapper's search on ResNet-18, batch 128, rules bp, fa and ifa in turn from empty caches
    (what one ``simulate`` call of them does), one run: per layer of bp, loop nests generated,
    feasible (fit the innermost level), kept after pruning by dominance, how many of its
    phases took their priced nests from an earlier layer of the same context (*shared*), and
    the time spent generating, pricing and pruning them; per rule, the same totals, the
    integer program (variables, solve time) and the whole ``make_plan``. Measured by wrapping
    the mapper's own functions (``candidates``, ``kept_nests``, ``solve``) for the calls.
``scaling``
    MLPs of ``--depths`` layers (256 wide, batch 128, bp,fa,ifa): cost per layer. The
    integer program's solve time grows faster than the depth (docs/simulator.md, "Mapper
    benchmark"): 16 layers take minutes, so the default stops at 8.

Prints the CPU, the load average before and after, and one table per section; ``--json``
writes the same numbers. Not a timed test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwsim.core.resources import CHIPS_DIR, DEFAULT_CHIP, DEFAULT_COMPARE_CHIP, shipped_chip_names
from hwsim.core.rules import parse_rules
from hwsim.core.workload import Workload, workload_from_dict
from hwsim.sim import mapper, nest_costs
from hwsim.sim.api import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.model_specs import build_workload

ROOT = Path(__file__).resolve().parent.parent
SAVED_DEFAULT = ROOT / "docs" / "results" / "compare-default.json"
DEFAULT_MLP = "mlp:784-256-256-256-256-256-10"
TARGETS_S = {"reprice": 4.0, "resnet": 2.0}
#: The ResNet-18 case again, timed right after the first with the mapper's caches it left.
WARM = "  the same again, the mapper's caches warm (a second call in one process)"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_experiment_workloads(directory: Path) -> dict[str, Path]:
    """The default experiment's workload per rule, written into ``directory``: its network
    (MLP 784-256×5-10, int8), optimizer and batch size, and the epochs and batches of the
    saved default comparison (its training set cut into batches, the last one partial).
    Update sparsity is left unmeasured (every weight written: the upper bound)."""
    saved = json.loads(SAVED_DEFAULT.read_text())
    training = saved["experiment"]["training"]
    batch, samples = training["batch_size"], saved["data"]["train_samples"]
    full, rest = divmod(samples, batch)
    document = build_workload(DEFAULT_MLP, batch_size=batch, optimizer=training["optimizer"])
    batches = [{"batch_size": batch, "count": full}] + (
        [{"batch_size": rest, "count": 1}] if rest else []
    )
    document.update(
        train_samples=samples,
        epochs=training["epochs"],
        batches=batches,
        steps_per_epoch=sum(b["count"] for b in batches),
    )
    workload_from_dict(document, "the default experiment's workload")  # checked
    paths = {}
    for rule in saved["experiment"]["rules"]:
        path = directory / f"{rule}.json"
        path.write_text(json.dumps({**document, "source": {**document["source"], "rule": rule}}))
        paths[rule] = path
    return paths


def reprice_cases(workloads: dict[str, Path]) -> dict[str, Callable[[], object]]:
    """(a) What ``hwsim compare`` re-simulates after one chip edit, and on a cold cache."""
    from hwsim.experiments.compare import price_chip  # torch-free: prices saved workloads

    compared = DEFAULT_COMPARE_CHIP
    memory = next(iter(load_chip(compared).document["memories"]))
    edits = iter(range(1 << 30))

    def edited() -> object:
        scale = 1.5 if next(edits) % 2 == 0 else 1 / 1.5
        base = load_chip(compared).memory(memory).read_energy_pj
        chip = load_chip(compared, overrides=[f"memories.{memory}.read_energy_pj={base * scale}"])
        return price_chip(chip, workloads, timeline=True)

    def every_chip() -> object:
        return [
            price_chip(load_chip(CHIPS_DIR / f"{name}.yaml"), workloads, name == compared.stem)
            for name in shipped_chip_names()
        ]

    return {
        f"re-price {compared.stem} after editing memories.{memory}.read_energy_pj "
        "(bp,fa,ifa)": edited,
        f"re-price every shipped chip, cold cache ({len(shipped_chip_names())} chips)": every_chip,
    }


def events_of(result: Any) -> int:
    """SimPy events a ``simulate`` result scheduled (all rules, all batch sizes)."""
    return sum(
        step.events for r in result.rules.values() for step in r.steps_by_batch_size.values()
    )


def run_cases(
    cases: dict[str, Callable[[], object]], repeats: int, warm: frozenset[str] = frozenset()
) -> dict[str, tuple[float, list[float], object]]:
    """Each case once to warm up, then ``repeats`` rounds of all of them: (median, times,
    the last result) per case.

    The mapper caches its search across calls (``hwsim.sim.mapper.clear_caches``); every
    timed call starts from empty caches, as a new process would, except the cases named in
    ``warm``, which find what the call before them left."""
    last = {name: case() for name, case in cases.items()}
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for name, case in cases.items():
            if name not in warm:
                mapper.clear_caches()
            start = time.perf_counter()
            last[name] = case()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), times[name], last[name]) for name in cases}


def search_per_layer(workload: Workload, chip_path: str, rules: str) -> dict[str, Any]:
    """(c) The mapper's search, measured inside :func:`mapper.make_plan` for each of ``rules``
    in turn, from empty caches (as one ``simulate`` call of those rules does).

    Wraps the generation of loop nests (``candidates``), their pricing and pruning
    (``kept_nests``: *shared* where an earlier layer or rule had the same context) and the
    integer program's solve (``solve``) for the calls, so what is counted and timed is what
    ``make_plan`` itself does. Per layer for the first rule; totals for each."""
    chip = load_chip(chip_path)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    spent: dict[str, float] = defaultdict(float)
    originals = {name: getattr(mapper, name) for name in ("candidates", "kept_nests", "solve")}
    priced: list[int] = []  # walk_costs calls: a kept_nests call that made none was shared
    walk_costs = nest_costs.walk_costs

    def counting_walk_costs(*args: Any) -> Any:
        priced.append(1)
        return walk_costs(*args)

    def timed(name: str) -> Callable[..., Any]:
        original = originals[name]

        def wrapper(*args: Any) -> Any:
            before = len(priced)
            start = time.perf_counter()
            out = original(*args)
            took = time.perf_counter() - start
            spent[name] += took
            if name == "solve":
                return out
            phase, i = args[3], args[4]
            if name == "kept_nests":
                phase, i = args[5], args[6]
            row = rows.setdefault(
                (phase, i), {"generated": 0, "feasible": 0, "kept": 0, "seconds": 0.0}
            )
            row["seconds"] += took
            if name == "candidates":
                row["generated"], row["feasible"] = out.generated, len(out.walks)
            else:
                row["kept"], row["shared"] = len(out), len(priced) == before
            return out

        return wrapper

    totals = []
    mapper.clear_caches()
    try:
        nest_costs.walk_costs = counting_walk_costs
        for name in originals:
            setattr(mapper, name, timed(name))
        for rule in parse_rules(rules):
            rows.clear()
            spent.clear()
            plan = mapper.make_plan(workload, chip, rule, workload.batch_size)
            assert plan.search is not None
            totals.append(
                {
                    "rule": rule.spec,
                    **plan.search.to_dict(),
                    "generate_seconds": spent["candidates"],
                    "price_prune_seconds": spent["kept_nests"],
                    "shared": sum(r.get("shared", False) for r in rows.values()),
                    "phases": len(rows),
                    "solve_seconds": spent["solve"],
                    "make_plan_seconds": plan.search.seconds,
                }
            )
            if len(totals) == 1:
                layers = _layer_rows(workload, rows, plan)
    finally:
        nest_costs.walk_costs = walk_costs
        for name, original in originals.items():
            setattr(mapper, name, original)
    return {"rules": rules, "batch_size": workload.batch_size, "layers": layers, "totals": totals}


def _layer_rows(
    workload: Workload, rows: dict[tuple[str, int], dict[str, Any]], plan: Any
) -> list[dict[str, Any]]:
    """Per layer: its phases' counts and times added up, how many were shared, the chosen
    nests."""
    layers = []
    for i, layer in enumerate(workload.layers):
        phases = {phase: rows[(phase, i)] for phase, j in rows if j == i}
        layers.append(
            {
                "layer": layer.name,
                "weight_shape": list(layer.weight_shape),
                "output_shape": list(layer.output_shape),
                "generated": sum(r["generated"] for r in phases.values()),
                "feasible": sum(r["feasible"] for r in phases.values()),
                "kept": sum(r["kept"] for r in phases.values()),
                "shared": sum(r.get("shared", False) for r in phases.values()),
                "seconds": sum(r["seconds"] for r in phases.values()),
                "by_phase": phases,
                "chosen": {phase: plan.walks[(phase, i)].describe() for phase in phases},
            }
        )
    return layers


def print_table(title: str, rows: list[tuple[str, float, str]], target: float | None) -> None:
    """Rows of (case, median seconds, note), against a target where there is one."""
    print(f"\n{title}" + (f" — target ≤ {target:g} s" if target else ""))
    for name, median, note in rows:
        verdict = ""
        if target:
            verdict = "  within target" if median <= target else f"  {median / target:.1f}× target"
        print(f"  {name:70s} {median:8.2f} s{verdict}  {note}")


def main() -> None:
    """Print the benchmark tables (and write them as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chip", default=str(DEFAULT_CHIP), help="chip of resnet/search")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per case [3]")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--sections", default="reprice,resnet,search,scaling")
    parser.add_argument("--depths", default="4,6,8", help="MLP depths of scaling [4,6,8]")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    depths = [int(d) for d in args.depths.split(",")]
    report: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_average_before": list(os.getloadavg()),
        "repeats": args.repeats,
        "chip": Path(args.chip).stem,
    }
    print(
        f"CPU {report['cpu']}, {report['cores']} cores, load average "
        f"{report['load_average_before']}; median of {args.repeats} rounds after a warm-up"
    )
    cases: dict[str, Callable[[], object]] = {}
    groups: dict[str, list[str]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        if "reprice" in sections:
            for name, case in reprice_cases(default_experiment_workloads(Path(tmp))).items():
                cases[name] = case
                groups["reprice"].append(name)
        resnet = workload_from_dict(build_workload("resnet18", batch_size=128))
        if "resnet" in sections:
            wide = workload_from_dict(build_workload("mlp:784-1000-1000-1000-10", batch_size=128))
            for name, work in (
                ("resnet18 (32x32), batch 128, bp,fa,ifa", resnet),
                (WARM, resnet),  # right after the cold one: its caches
                ("mlp 784-1000-1000-1000-10, batch 128, bp,fa,ifa", wide),
            ):
                cases[name] = lambda work=work: simulate(work, args.chip, "bp,fa,ifa")
                groups["resnet"].append(name)
        if "scaling" in sections:
            for depth in depths:
                spec = "mlp:" + "-".join(["784"] + ["256"] * (depth - 1) + ["10"])
                work = workload_from_dict(build_workload(spec, batch_size=128))
                name = f"mlp {depth} layers 256 wide, batch 128, bp,fa,ifa"
                cases[name] = lambda work=work: simulate(work, args.chip, "bp,fa,ifa")
                groups["scaling"].append(name)
        timed = run_cases(cases, args.repeats, frozenset({WARM}))
    report["cases"] = {
        name: {"median_s": median, "times_s": times} for name, (median, times, _) in timed.items()
    }
    if "reprice" in groups:
        print_table(
            "(a) default `hwsim compare` re-price (simulator work)",
            [(n, timed[n][0], "") for n in groups["reprice"]],
            TARGETS_S["reprice"],
        )
    if "resnet" in groups:
        rows = []
        for n in groups["resnet"]:
            events = events_of(timed[n][2])
            report["cases"][n]["events"] = events
            rows.append((n, timed[n][0], f"{events} events"))
        print_table(f"(b) ResNet-18 on {report['chip']}", rows[:2], TARGETS_S["resnet"])
        print_table("    and a wide MLP", rows[2:], None)
    if "scaling" in groups:
        print(f"\ndepth scaling on {report['chip']}:")
        base = None
        for depth, n in zip(depths, groups["scaling"], strict=True):
            wall = timed[n][0]
            base = base or wall / depth
            print(
                f"  {depth:2d} layers {wall * 1e3:8.1f} ms  {wall / depth * 1e3:6.2f} ms/layer  "
                f"({wall / depth / base:.2f}× the {depths[0]}-layer rate)"
            )
    if "search" in sections:
        search = search_per_layer(resnet, args.chip, "bp,fa,ifa")
        report["search"] = search
        print(
            f"\n(c) the mapper's search: ResNet-18, batch 128, bp then fa then ifa from empty "
            f"caches, on {report['chip']}; per layer for bp (one run)"
        )
        print(
            f"  {'layer':7s} {'weight':>16s} {'output':>13s} {'generated':>9s} {'feasible':>8s} "
            f"{'kept':>5s} {'shared':>6s} {'time':>9s}"
        )
        for row in search["layers"]:
            weight = "×".join(map(str, row["weight_shape"]))
            output = "×".join(map(str, row["output_shape"]))
            print(
                f"  {row['layer']:7s} {weight:>16s} {output:>13s} {row['generated']:9d} "
                f"{row['feasible']:8d} {row['kept']:5d} {row['shared']:6d} "
                f"{row['seconds'] * 1e3:7.1f} ms"
            )
        for t in search["totals"]:
            print(
                f"  {t['rule']:4s} {t['candidates']:6d} generated, {t['feasible']:5d} feasible, "
                f"{t['kept']:4d} kept; {t['shared']:2d} of {t['phases']} phases shared; "
                f"generate {t['generate_seconds']:.2f} s, price and prune "
                f"{t['price_prune_seconds']:.2f} s; program {t['variables']} variables, "
                f"solved in {t['solve_seconds']:.2f} s; make_plan {t['make_plan_seconds']:.2f} s"
            )
    report["load_average_after"] = list(os.getloadavg())
    print(f"\nload average after: {report['load_average_after']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
