"""Benchmark the simulator: one training step of ResNet-18 and a wide MLP, per rule.

Run: ``python benchmarks/bench_simulate.py [--chip FILE] [--repeats N]``. Prints the median wall
time per simulate() call (closed form + SimPy + pricing), the SimPy events scheduled and events
per second, then the cost of MLPs of 4…32 layers to show it grows linearly with depth.
Not a timed test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import time

from hwsim.core.resources import DEFAULT_CHIP
from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.model_specs import build_workload


def _time(workload, chip, rules: str, repeats: int) -> tuple[float, int]:
    times, events = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = simulate(workload, chip, rules)
        times.append(time.perf_counter() - start)
        events = sum(
            step.events for r in result.rules.values() for step in r.steps_by_batch_size.values()
        )
    return statistics.median(times), events


def main() -> None:
    """Print the benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chip", default=str(DEFAULT_CHIP))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"chip {args.chip}, median of {args.repeats} runs")
    cases = {
        "resnet18 (32x32, batch 128)": build_workload("resnet18", batch_size=128),
        "mlp 784-1000-1000-1000-10 (batch 128)": build_workload(
            "mlp:784-1000-1000-1000-10", batch_size=128
        ),
    }
    for name, doc in cases.items():
        work = workload_from_dict(doc)
        for rules in ("bp", "fa", "ifa", "bp,fa,ifa"):
            wall, events = _time(work, args.chip, rules, args.repeats)
            print(
                f"{name:40s} {rules:10s} {wall * 1e3:8.1f} ms  {events:7d} events  "
                f"{events / wall:10.0f} events/s"
            )
    print("depth scaling (MLP 256 wide, batch 128, bp,fa,ifa):")
    base = None
    for depth in (4, 8, 16, 32):
        spec = "mlp:" + "-".join(["784"] + ["256"] * (depth - 1) + ["10"])
        wall, events = _time(
            workload_from_dict(build_workload(spec, batch_size=128)),
            args.chip,
            "bp,fa,ifa",
            args.repeats,
        )
        base = base or wall / depth
        print(
            f"  {depth:2d} layers {wall * 1e3:8.1f} ms  {events:7d} events  "
            f"{wall / depth * 1e3:6.2f} ms/layer  ({wall / depth / base:.2f}× the 4-layer rate)"
        )


if __name__ == "__main__":
    main()
