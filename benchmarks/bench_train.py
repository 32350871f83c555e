"""Training-step time of every rule on the same model, side by side (not a timed test).

Rules are interleaved step by step (in rotating order) so that machine noise hits all of them
alike; the figure reported is the median step time and its ratio to BP's. Every step runs
inside ``feedback_step`` as training does (KP's B update, brSF's state).
Target: FA and IFA ≤ 1.05× BP.

    python benchmarks/bench_train.py [--steps 200] [--threads 1] [--rules bp,fa,ifa,dfa,...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from models import TrainConfig, build_model, feedback_step, load_dataset

RULES = ("bp", "fa", "ifa", "dfa", "usf", "brsf", "frsf", "kp")


def bench(
    model_name: str, bits: int, steps: int, batch_size: int, rules: tuple[str, ...] = RULES
) -> dict[str, float]:
    """Median seconds per training step for each rule on one model configuration."""
    data = load_dataset("mnist5k")
    setups = {}
    for rule in rules:
        config = TrainConfig(
            algo=rule,
            model=model_name,
            weight_bits=bits,
            act_bits=bits,
            depth=6 if model_name == "mlp" else None,
        )
        model = build_model(config, data)
        setups[rule] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
    g = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {r: [] for r in rules}
    for step in range(steps + 10):
        idx = torch.randint(0, len(data.y_train), (batch_size,), generator=g)
        x, y = data.x_train[idx], data.y_train[idx]
        # Rotate the order each step: whichever rule runs right after another pays its cache
        # misses, and a fixed order would bill that to the same rule every time.
        turn = step % len(rules)
        for rule in rules[turn:] + rules[:turn]:
            model, opt = setups[rule]
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            with feedback_step(model, 1e-3):
                opt.step()
            if step >= 10:  # warm-up steps are not timed
                times[rule].append(time.perf_counter() - start)
    return {r: statistics.median(t) for r, t in times.items()}


def main() -> None:
    """Print median step times and ratios to BP for float and 8-bit MLP and CNN."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated, bp first")
    args = parser.parse_args()
    rules = tuple(r.strip() for r in args.rules.split(",") if r.strip())
    if rules[0] != "bp":
        parser.error("--rules must start with bp (ratios are to BP)")
    torch.set_num_threads(args.threads)
    print(f"median of {args.steps} steps, batch {args.batch_size}, {args.threads} thread(s)")
    print(f"{'model':<12}{'bp ms':>8}" + "".join(f"{r + '/bp':>10}" for r in rules[1:]))
    for model_name, bits, label in [
        ("mlp", 32, "mlp float"),
        ("mlp", 8, "mlp 8-bit"),
        ("cnn", 32, "cnn float"),
        ("cnn", 8, "cnn 8-bit"),
    ]:
        steps = args.steps if model_name == "mlp" else max(20, args.steps // 5)
        t = bench(model_name, bits, steps, args.batch_size, rules)
        ratios = "".join(f"{t[r] / t['bp']:>10.3f}" for r in rules[1:])
        print(f"{label:<12}{t['bp'] * 1e3:>8.2f}{ratios}")


if __name__ == "__main__":
    main()
