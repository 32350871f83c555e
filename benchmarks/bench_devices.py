"""CPU against GPU: the same runs and analyses on both devices, their numbers and their speed.

For whoever has a GPU (the test suite needs none). Per rule it trains the default experiment's
network and data (quantized MLP 784-256×5-10 on mnist5k, seed 0) on the CPU and on CUDA from
the same seed and checks:

- **initialisation** (epoch 0, before any step): test loss and accuracy equal up to
  float32 summation order (both devices start from the same CPU-drawn weights and feedback);
- **the same weights, both devices**: the CPU-trained network's logits on the GPU against the
  CPU (quantizer rounding can flip a few activations by one step; the report gives the
  largest difference and the share of equal argmaxes);
- **after training**: test accuracy on each device (training is chaotic: float32 sums in a
  different order take the runs apart, FA's most; a gap over ``--accuracy-tolerance`` is
  reported as drift, not failed);
- **analyses on the GPU**: Hessian trace (Hutchinson) and top eigenvalue, PGD accuracy and
  one corruption, on the CPU-trained weights, against the CPU;
- **speed**: the median training-step time at batch 64 and 1024 on each device.

    python benchmarks/bench_devices.py [--epochs 2] [--rules bp,fa,ifa] [--json out.json]

Exits 0 with a message where torch sees no GPU, 1 where a check fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwsim.models import TrainConfig, bp_view, build_model, feedback_step, train
from hwsim.models.analysis.attacks import adversarial_accuracy
from hwsim.models.analysis.corruptions import corruption_accuracy
from hwsim.models.analysis.hessian import HessianOperator, hutchinson_trace, top_eigenvalues
from hwsim.models.environment import environment
from hwsim.models.training import load_data, load_run


def default_config(rule: str, epochs: int) -> TrainConfig:
    """The default experiment's run of ``rule`` (configs/experiments/default.yaml), seed 0,
    for ``epochs`` epochs."""
    from hwsim.core.resources import DEFAULT_EXPERIMENT
    from hwsim.experiments.experiment import load_experiment

    return load_experiment(DEFAULT_EXPERIMENT).train_config(rule, 0).replace(epochs=epochs)


def step_time(config: TrainConfig, device: torch.device, batch: int, steps: int) -> float:
    """Median seconds per training step (forward, backward, optimizer, feedback step)."""
    data = load_data(config)
    model = build_model(config, data).to(device)
    data = data.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    times = []
    for step in range(steps + 5):
        idx = torch.randint(0, len(data.y_train), (batch,), generator=g).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        with feedback_step(model, 1e-3):
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 5:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def analyses(run_dir: Path, device: torch.device) -> dict[str, float]:
    """Curvature and robustness of a trained run, measured on ``device``."""
    _, model, data = load_run(run_dir, device=device)
    model = bp_view(model).eval()  # true gradients, as hwsim analyze measures
    x, y = data.x_test[:500], data.y_test[:500]
    operator = HessianOperator(model, nn.functional.cross_entropy, [(x, y)])
    trace = hutchinson_trace(operator, samples=20, seed=0)
    eigen = top_eigenvalues(operator, k=1, seed=0)
    pgd = adversarial_accuracy(model, x, y, eps_list=[0.05], attack="pgd", steps=5)
    noise = corruption_accuracy(
        model, x, y, names=["gaussian_noise"], severities=[3], seed=0, image_shape=(28, 28)
    )
    return {
        "hessian_trace": float(trace.estimate),
        "top_eigenvalue": float(eigen.eigenvalues[0]),
        "pgd_accuracy": float(pgd[0].accuracy),
        "gaussian_noise_accuracy": float(noise[0].accuracy),
    }


def main() -> int:
    """Train and measure on both devices; print the comparison; exit 1 if a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rules", default="bp,fa,ifa")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per device")
    parser.add_argument("--threads", type=int, default=None, help="CPU torch threads")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--against",
        default="cuda",
        help="the second device (cpu checks this script itself on a machine without a GPU)",
    )
    parser.add_argument(
        "--accuracy-tolerance", type=float, default=0.03, help="after training, per rule"
    )
    args = parser.parse_args()
    if args.against.startswith("cuda") and not torch.cuda.is_available():
        print(f"torch {torch.__version__} sees no CUDA GPU: nothing to compare on this machine")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu, gpu = torch.device("cpu"), torch.device(args.against)
    report: dict[str, Any] = {"environment": {"cpu": environment(cpu), "gpu": environment(gpu)}}
    failures: list[str] = []
    drifts: list[str] = []
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        for rule in rules:
            config = default_config(rule, args.epochs)
            runs = {}
            for device in (cpu, gpu):
                start = time.perf_counter()
                result = train(config, Path(tmp) / f"{rule}-{len(runs)}", device=device)
                runs[len(runs)] = (result, time.perf_counter() - start)
            (on_cpu, cpu_s), (on_gpu, gpu_s) = runs[0], runs[1]
            first_cpu, first_gpu = on_cpu.metrics[0], on_gpu.metrics[0]
            init_loss_diff = abs(first_cpu["test_loss"] - first_gpu["test_loss"])
            # The CPU-trained weights, evaluated on both devices.
            _, model_cpu, data_cpu = load_run(on_cpu.out_dir, device=cpu)
            _, model_gpu, data_gpu = load_run(on_cpu.out_dir, device=gpu)
            model_cpu.eval(), model_gpu.eval()
            with torch.no_grad():
                logits_cpu = model_cpu(data_cpu.x_test)
                logits_gpu = model_gpu(data_gpu.x_test).cpu()
            same_argmax = float((logits_cpu.argmax(1) == logits_gpu.argmax(1)).float().mean())
            measured = {"cpu": analyses(on_cpu.out_dir, cpu), "gpu": analyses(on_cpu.out_dir, gpu)}
            row = {
                "init_test_loss_diff": init_loss_diff,
                "init_test_accuracy": [first_cpu["test_accuracy"], first_gpu["test_accuracy"]],
                "same_weights_max_logit_diff": float((logits_cpu - logits_gpu).abs().max()),
                "same_weights_same_argmax": same_argmax,
                "final_test_accuracy": [on_cpu.final_test_accuracy, on_gpu.final_test_accuracy],
                "train_wall_s": [round(cpu_s, 2), round(gpu_s, 2)],
                "analyses": measured,
                "step_ms": {
                    f"batch {batch}": [
                        1e3 * step_time(config, device, batch, args.steps) for device in (cpu, gpu)
                    ]
                    for batch in (64, 1024)
                },
            }
            report[rule] = row
            if init_loss_diff > 1e-4:
                failures.append(f"{rule}: initial test loss differs by {init_loss_diff:.2e}")
            if same_argmax < 0.99:
                failures.append(f"{rule}: the same weights agree on {same_argmax:.1%} of argmaxes")
            gap = abs(on_cpu.final_test_accuracy - on_gpu.final_test_accuracy)
            if gap > args.accuracy_tolerance:  # drift, reported: training is chaotic
                drifts.append(f"{rule}: final test accuracy differs by {gap:.3f}")
            for key in ("pgd_accuracy", "gaussian_noise_accuracy"):
                if abs(measured["cpu"][key] - measured["gpu"][key]) > 0.01:
                    failures.append(f"{rule}: {key} differs by more than 0.01")
            for key in ("hessian_trace", "top_eigenvalue"):
                a, b = measured["cpu"][key], measured["gpu"][key]
                if abs(a - b) > 1e-2 * max(abs(a), abs(b), 1e-12):
                    failures.append(f"{rule}: {key} {a:.4g} (cpu) vs {b:.4g} (cuda), over 1%")
            print(f"{rule}: {json.dumps(row)}", flush=True)
    report["failures"], report["drift_beyond_tolerance"] = failures, drifts
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    for drift in drifts:
        print(f"drift (not a failure: float sums in another order take training apart): {drift}")
    print("\n".join(failures) if failures else "every check passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
