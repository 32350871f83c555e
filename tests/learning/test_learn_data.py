"""Loaders on small files written in the real formats; clear errors for missing or bad ones."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from hwsim.core.errors import InputError
from hwsim.models import SyntheticSpec, load_dataset, read_idx


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _mnist_files(folder, n_train=120, n_test=30, compress=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        _write_idx(folder / name, arr, compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_idx_loader_reads_real_format(tmp_path, compress):
    arrays = _mnist_files(tmp_path, compress=compress)
    data = load_dataset("mnist", data_dir=tmp_path)
    assert data.x_train.shape == (120, 1, 28, 28) and data.x_test.shape == (30, 1, 28, 28)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"][:, None] / 255.0).float()
    assert torch.equal(data.x_train, expected)
    assert torch.equal(data.y_test, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]))


def test_fashion_mnist_from_named_subfolder_and_train_size(tmp_path):
    _mnist_files(tmp_path / "fashion-mnist")
    data = load_dataset("fashion-mnist", data_dir=tmp_path, train_size=100)
    assert len(data.y_train) == 100 and data.name == "fashion-mnist"


def test_missing_files_are_named(tmp_path):
    with pytest.raises(InputError, match="--data-dir"):
        load_dataset("mnist")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(InputError, match="missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte"):
        load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(InputError, match=r"missing data_batch_1.*test_batch"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_bad_idx_file_is_clear(tmp_path):
    bad = tmp_path / "x"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(InputError, match="bad magic"):
        read_idx(bad)
    short = tmp_path / "y"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(InputError, match="holds 3 bytes"):
        read_idx(short)


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
            b"labels": list(rng.integers(0, 10, 20)),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert data.x_train.shape == (100, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    first = pickle.loads((folder / "data_batch_1").read_bytes())[b"data"][0]
    assert torch.allclose(data.x_train[0].flatten(), torch.from_numpy(first / 255.0).float())


def test_bundled_datasets_are_real_and_split_fixed():
    digits = load_dataset("digits")
    assert digits.x_train.shape == (1437, 1, 8, 8) and len(digits.y_test) == 360
    mnist = load_dataset("mnist5k")
    assert mnist.x_train.shape == (4000, 1, 28, 28) and len(mnist.y_test) == 1000
    assert float(mnist.x_train.min()) >= 0.0 and float(mnist.x_train.max()) == 1.0
    # every class is present in both splits (the csv is sorted by class: it was shuffled)
    assert len(torch.unique(mnist.y_train[:500])) == 10 and len(torch.unique(mnist.y_test)) == 10
    again = load_dataset("mnist5k", train_size=100)
    assert torch.equal(again.x_train, mnist.x_train[:100])


def test_synthetic_teacher_task_any_size():
    data = load_dataset("synthetic", synthetic=SyntheticSpec(inputs=5, classes=3, samples=600))
    assert data.x_train.shape == (500, 5) and data.num_classes == 3
    assert set(torch.unique(data.y_train).tolist()) <= {0, 1, 2}


@pytest.mark.parametrize(
    ("size", "message"), [(99, "100..50000"), (50_001, "100..50000"), (2000, "exceeds the 1437")]
)
def test_train_size_limits(size, message):
    with pytest.raises(InputError, match=message):
        load_dataset("digits", train_size=size)


def test_unknown_dataset():
    with pytest.raises(InputError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_analyze_finds_moved_data_with_data_dir(tmp_path):
    """A run whose data files moved: analyze says to pass --data-dir, and with it runs."""
    from click.testing import CliRunner

    from hwsim.cli import main
    from hwsim.models import TrainConfig, train

    _mnist_files(tmp_path / "before", n_train=150, n_test=40)
    run = tmp_path / "run"
    config = TrainConfig(
        algo="bp", dataset="mnist", data_dir=str(tmp_path / "before"), depth=2, width=8,
        epochs=1, batch_size=50, weight_bits=32, act_bits=32,
    )  # fmt: skip
    train(config, run, device="cpu")
    (tmp_path / "before").rename(tmp_path / "after")
    args = ["analyze", "hessian", str(run), "--samples", "40", "--probes", "2", "--top-k", "1"]
    args += ["--no-slq", "--device", "cpu", "--json"]
    lost = CliRunner().invoke(main, args)
    assert lost.exit_code == 2 and "pass --data-dir DIR" in lost.output, lost.output
    found = CliRunner().invoke(main, [*args, "--data-dir", str(tmp_path / "after")])
    assert found.exit_code == 0, found.output
    assert (run / "analysis" / "hessian.json").is_file()
