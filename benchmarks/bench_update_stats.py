"""What measuring update sparsity costs a training step (not a test).

Two copies of the default experiment's network (MLP 784-256×5-10, 8-bit weights and
activations, Adam 1e-3; ``hwsim.experiments.experiment.default_train_config``) train on the same
batches of mnist5k, one with :class:`hwsim.models.update_stats.UpdateStats` around every optimizer
step (as ``hwsim.models.training.train`` does), one without. Each run is ``--steps`` steps of each
copy, the two interleaved in blocks of 10 steps in alternating order so that machine noise hits
both alike; reported: the median over ``--runs`` runs of the time per step of each, and their
ratio (with stats ÷ without). The epoch-end read-back (:meth:`UpdateStats.end_epoch`) is timed
apart: once per epoch, not per step. Statistics collection of the activation scales is over
before timing starts (the steps of a run after its first 300).

    python benchmarks/bench_update_stats.py [--steps 200] [--runs 5] [--batch-sizes 64,1]
        [--threads 1] [--rule bp]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from hwsim.experiments.experiment import default_train_config
from hwsim.models import build_model, feedback_step, load_dataset
from hwsim.models.update_stats import UpdateStats

BLOCK = 10


def _setup(rule: str, data) -> tuple[nn.Module, torch.optim.Optimizer]:
    config = default_train_config(algo=rule)
    torch.manual_seed(config.seed)
    model = build_model(config, data)
    for m in model.modules():  # the activation scales: learned from the first step on
        if hasattr(m, "collect_stats_steps") and hasattr(m, "counter"):
            m.collect_stats_steps = 1
    return model, torch.optim.Adam(model.parameters(), lr=config.lr)


def _step(model, opt, x, y, lr: float, stats: UpdateStats | None) -> None:
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if stats is not None:
        stats.before_step(model)
    with feedback_step(model, lr):
        opt.step()
    if stats is not None:
        stats.after_step(model)


def bench(rule: str, batch_size: int, steps: int, runs: int) -> dict[str, float]:
    """Median seconds per step with and without stats, and of one epoch-end read-back."""
    data = load_dataset("mnist5k")
    lr = default_train_config().lr
    plain, measured = _setup(rule, data), _setup(rule, data)
    stats = UpdateStats(measured[0])
    g = torch.Generator().manual_seed(0)
    per_step: dict[str, list[float]] = {"without": [], "with": []}
    end_epoch: list[float] = []
    for run in range(runs + 1):  # the first run warms up and is not counted
        spent = {"without": 0.0, "with": 0.0}
        for block in range(steps // BLOCK):
            batches = [
                torch.randint(0, len(data.y_train), (batch_size,), generator=g)
                for _ in range(BLOCK)
            ]
            order = ["without", "with"] if (run + block) % 2 == 0 else ["with", "without"]
            for name in order:
                model, opt = plain if name == "without" else measured
                tracker = stats if name == "with" else None
                start = time.perf_counter()
                for idx in batches:
                    _step(model, opt, data.x_train[idx], data.y_train[idx], lr, tracker)
                spent[name] += time.perf_counter() - start
        start = time.perf_counter()
        stats.end_epoch()
        took = time.perf_counter() - start
        if run:
            end_epoch.append(took)
            for name in spent:
                per_step[name].append(spent[name] / (steps // BLOCK * BLOCK))
    result = {name: statistics.median(values) for name, values in per_step.items()}
    result["end_epoch"] = statistics.median(end_epoch)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-sizes", default="64,1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rule", default="bp")
    args = parser.parse_args()
    if args.steps < BLOCK or args.runs < 1:
        parser.error(f"--steps must be at least {BLOCK} and --runs at least 1")
    torch.set_num_threads(args.threads)
    print(
        f"MLP 784-256x5-10, 8-bit, Adam, rule {args.rule}, {args.threads} thread(s), "
        f"{args.steps} steps x {args.runs} runs (median)"
    )
    print("| batch | step without stats | step with stats | ratio | end_epoch read-back |")
    print("|---|---|---|---|---|")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        r = bench(args.rule, batch_size, args.steps, args.runs)
        print(
            f"| {batch_size} | {r['without'] * 1e3:.3f} ms | {r['with'] * 1e3:.3f} ms | "
            f"{r['with'] / r['without']:.3f} | {r['end_epoch'] * 1e3:.3f} ms |"
        )


if __name__ == "__main__":
    main()
