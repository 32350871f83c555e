"""Training-step time of every rule, float and 8-bit, fast and reference quantizers (not a test).

For each network (the default MLP 784-256×5-10 and the CNN) every combination of variant and
rule is built, and their training steps are interleaved step by step (in rotating order) so
that machine noise hits all of them alike. Variants: ``float`` (32-bit), ``8-bit`` (brevitas
quantizers on the fast path, :mod:`hwsim.models.fastquant`) and ``8-bit ref`` (the same model on
brevitas' own reference path). Reported: median step times, each variant's BP step over the
float BP step (target for ``8-bit``: ≤ 1.5), and each rule's step over BP's of the same variant
(target: FA and IFA ≤ 1.05). Every step runs inside ``feedback_step`` as training does.

Two phases of a quantized run are timed: ``collect``, the first 300 training steps, where
brevitas' activation scales collect percentile statistics of every activation (a
``kthvalue`` per quantizer and step, which ties among the largest activations, common in the
CNN on MNIST, make exact only as ``torch.kthvalue`` itself), and ``learned``, every step after
that (here the statistics are collected over the warm-up's first step instead of 300).

    python benchmarks/bench_train.py [--steps 200] [--threads 1] [--rules bp,fa,ifa,dfa,...]
        [--variants float,8-bit,8-bit-ref] [--models mlp,cnn] [--phases collect,learned]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from hwsim.models import TrainConfig, build_model, feedback_step, load_dataset
from hwsim.models.fastquant import reference_quantizers

RULES = ("bp", "fa", "ifa", "dfa", "usf", "brsf", "frsf", "kp")
#: name → (bits, fast path)
VARIANTS = {"float": (32, True), "8-bit": (8, True), "8-bit-ref": (8, False)}


def bench(
    model_name: str,
    steps: int,
    batch_size: int,
    rules: tuple[str, ...] = RULES,
    variants: tuple[str, ...] = tuple(VARIANTS),
    phase: str = "collect",
) -> dict[tuple[str, str], float]:
    """Median seconds per training step for each ``(variant, rule)`` on one network, in the
    statistics-collection ``phase`` (``collect``) or after it (``learned``)."""
    data = load_dataset("mnist5k")
    setups = {}
    for variant in variants:
        bits, _ = VARIANTS[variant]
        for rule in rules:
            config = TrainConfig(
                algo=rule,
                model=model_name,
                weight_bits=bits,
                act_bits=bits,
                depth=6 if model_name == "mlp" else None,
            )
            model = build_model(config, data)
            if phase == "learned":  # collect over the first warm-up step, learned after it
                for m in model.modules():
                    if hasattr(m, "collect_stats_steps") and hasattr(m, "counter"):
                        m.collect_stats_steps = 1
            setups[variant, rule] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
    keys = list(setups)
    g = torch.Generator().manual_seed(0)
    times: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    for step in range(steps + 10):
        idx = torch.randint(0, len(data.y_train), (batch_size,), generator=g)
        x, y = data.x_train[idx], data.y_train[idx]
        # Rotate the order each step: whichever setup runs right after another pays its cache
        # misses, and a fixed order would bill that to the same one every time.
        turn = step % len(keys)
        for key in keys[turn:] + keys[:turn]:
            model, opt = setups[key]
            fast = VARIANTS[key[0]][1]
            start = time.perf_counter()
            if fast:
                _step(model, opt, x, y)
            else:
                with reference_quantizers():
                    _step(model, opt, x, y)
            if step >= 10:  # warm-up steps are not timed
                times[key].append(time.perf_counter() - start)
    return {k: statistics.median(t) for k, t in times.items()}


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    with feedback_step(model, 1e-3):
        opt.step()


def main() -> None:
    """Print median step times, the 8-bit/float ratios and the ratios to BP."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated, bp first")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="float first")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--phases", default="collect,learned")
    args = parser.parse_args()
    rules = tuple(r.strip() for r in args.rules.split(",") if r.strip())
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if rules[0] != "bp":
        parser.error("--rules must start with bp (ratios are to BP)")
    if variants[0] != "float" or any(v not in VARIANTS for v in variants):
        parser.error(f"--variants: float first, then any of {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    print(f"median of {args.steps} steps (cnn: a fifth, at least 20), batch {args.batch_size}, ")
    print(f"{args.threads} thread(s); x/float = this variant's bp step / the float bp step")
    header = f"{'model':<6}{'phase':<9}{'variant':<11}{'bp ms':>8}{'x/float':>9}"
    print(header + "".join(f"{r + '/bp':>10}" for r in rules[1:]))
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if any(p not in ("collect", "learned") for p in phases):
        parser.error("--phases: collect and/or learned")
    for model_name in (m.strip() for m in args.models.split(",") if m.strip()):
        steps = args.steps if model_name == "mlp" else max(20, args.steps // 5)
        for phase in phases:
            t = bench(model_name, steps, args.batch_size, rules, variants, phase)
            for variant in variants:
                bp = t[variant, "bp"]
                ratios = "".join(f"{t[variant, r] / bp:>10.3f}" for r in rules[1:])
                vs_float = bp / t["float", "bp"]
                row = f"{model_name:<6}{phase:<9}{variant:<11}{bp * 1e3:>8.2f}{vs_float:>9.3f}"
                print(row + ratios, flush=True)


if __name__ == "__main__":
    main()
