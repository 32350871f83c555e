"""``--device``, ``--threads`` and the environment every run records; parallel compare runs.

The GPU side of device parity is checked by ``benchmarks/bench_devices.py`` on a machine that
has one; here, the CPU contract and the errors a machine without CUDA must give.
"""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.experiments.compare import run_compare
from hwsim.experiments.experiment import load_experiment
from hwsim.models import TrainConfig, load_dataset, train
from hwsim.models.device import resolve_device
from hwsim.models.environment import environment

NO_CUDA = not torch.cuda.is_available()
TRAIN = ["--dataset", "digits", "--depth", "2", "--width", "16", "--epochs", "1"]
TRAIN += ["--train-size", "300", "--batch-size", "100"]
ENV_KEYS = {"hwsim", "torch", "brevitas", "python", "platform", "device", "threads", "cpu"}

TWO_SEEDS = """\
version: 1
name: two-seeds
dataset: {name: digits, train_size: 200}
network: {model: mlp, depth: 3, width: 16}
quantization: {weight_bits: 8, act_bits: 8, feedback_bits: 8}
training: {epochs: 2, batch_size: 50, optimizer: adam, lr: 0.003}
seeds: [0, 1]
rules: [bp, fa]
chips: [edge_sram]
"""


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cpu" if NO_CUDA else "cuda")
    assert resolve_device(None) == resolve_device("auto")
    with pytest.raises(InputError, match="expected one of auto, cpu, cuda"):
        resolve_device("tpu")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="sees no CUDA GPU; use --device cpu"):
        resolve_device("cuda")
    for command in (["train", *TRAIN, "--out", str(tmp_path / "t")], ["compare", "--out"]):
        if command[0] == "compare":
            command = [*command, str(tmp_path / "c"), "--seed", "0", "--epochs", "1"]
        result = CliRunner().invoke(main, [*command, "--device", "cuda"])
        assert result.exit_code == 2, result.output
        assert "sees no CUDA GPU" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "t").exists() and not (tmp_path / "c").exists()


def test_bad_device_and_threads_are_exit_2(tmp_path):
    for extra, message in (
        (["--device", "gpu"], "expected auto, cpu, cuda or cuda:N"),
        (["--threads", "0"], "--threads"),
    ):
        result = CliRunner().invoke(main, ["train", *TRAIN, "--out", str(tmp_path), *extra])
        assert result.exit_code == 2 and message in result.output, result.output


def test_train_records_its_environment_and_threads(tmp_path):
    out = tmp_path / "run"
    before = torch.get_num_threads()
    result = CliRunner().invoke(
        main, ["train", *TRAIN, "--out", str(out), "--device", "cpu", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    env = json.loads((out / "result.json").read_text())["environment"]
    assert set(env) >= ENV_KEYS
    assert (env["device"], env["threads"], env["torch"]) == ("cpu", 1, torch.__version__)
    assert torch.get_num_threads() == before  # the command's count does not leak out


def test_environment_names_the_thread_count_it_runs_with():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert environment("cpu")["threads"] == 1
    finally:
        torch.set_num_threads(previous)


def test_dataset_to_device_keeps_the_data():
    data = load_dataset("digits", train_size=100)
    assert data.to("cpu") is data  # already there: nothing copied
    moved = data.to(torch.device("cpu"))
    assert torch.equal(moved.x_train, data.x_train) and moved.num_classes == data.num_classes


def test_training_on_cpu_is_the_default_run_on_a_cpu_machine(tmp_path):
    config = TrainConfig(dataset="digits", depth=2, width=16, epochs=1, train_size=200)
    a = train(config, tmp_path / "a", device="cpu")
    b = train(config, tmp_path / "b", device="auto" if NO_CUDA else "cpu")
    assert a.metrics == b.metrics


def _metrics(out: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted(out.glob("runs/*/metrics.jsonl"))}


def test_compare_workers_do_not_change_a_number(tmp_path):
    """Two runs at once in worker processes give the same metrics, byte for byte, as one at a
    time in this process: each run has its own seed and the same thread count."""
    path = tmp_path / "two-seeds.yaml"
    path.write_text(TWO_SEEDS)
    experiment = load_experiment(path)
    one = run_compare(experiment, tmp_path / "one", workers=1, device="cpu", threads=1)
    result = CliRunner().invoke(
        main,
        [
            *("compare", "--experiment", str(path), "--out", str(tmp_path / "two"), "--quiet"),
            *("--workers", "2", "--device", "cpu", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    two = json.loads(result.output)
    assert _metrics(tmp_path / "one") == _metrics(tmp_path / "two")
    assert len(_metrics(tmp_path / "one")) == 4  # 2 rules × 2 seeds
    assert one["rules"] == two["rules"]
    assert (one["environment"]["workers"], two["environment"]["workers"]) == (1, 2)
    assert two["environment"]["threads"] == 1 and set(two["environment"]) >= ENV_KEYS
    for rule in ("bp", "fa"):
        assert len(two["rules"][rule]["test_accuracy"]["per_seed_final"]) == 2


def test_compare_seeds_option(tmp_path):
    path = tmp_path / "two-seeds.yaml"
    path.write_text(TWO_SEEDS.replace("epochs: 2", "epochs: 1"))
    base = ["compare", "--experiment", str(path), "--quiet", "--workers", "1"]
    result = CliRunner().invoke(main, [*base, "--seeds", "3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "o" / "runs").iterdir())
    assert names == ["bp-seed3", "fa-seed3"]
    for extra, message in (
        (["--seeds", "0,0"], "--seeds 0,0: a seed is given twice"),
        (["--seeds", "0,x"], "--seeds '0,x': expected comma-separated numbers"),
        (["--seeds", "0,1", "--seed", "2"], "--seed and --seeds: give one of them"),
        (["--seeds", "-1"], "--seeds -1: expected"),
    ):
        result = CliRunner().invoke(main, [*base, *extra, "--out", str(tmp_path / "bad")])
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
        assert not (tmp_path / "bad").exists()


def test_the_default_compare_trains_three_seeds():
    from hwsim.core.resources import DEFAULT_EXPERIMENT

    assert load_experiment(DEFAULT_EXPERIMENT).seeds == (0, 1, 2)


def test_sweep_takes_a_device_and_records_its_environment(tmp_path):
    tiny = ["--dataset", "digits", "--depth", "2", "--width", "16", "--epochs", "1"]
    args = ["sweep", "angle", "--angles", "0", "--seeds", "0", *tiny, "--quiet"]
    result = CliRunner().invoke(main, [*args, "--device", "cpu", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    env = json.loads((tmp_path / "s" / "sweep.json").read_text())["environment"]
    assert set(env) >= ENV_KEYS | {"executor", "workers"}
    assert (env["device"], env["threads"], env["executor"]) == ("cpu", 1, "local")
    if NO_CUDA:
        for command in (args, ["reproduce", "--scale", "small", "--quiet"]):
            out = tmp_path / command[0]
            result = CliRunner().invoke(main, [*command, "--device", "cuda", "--out", str(out)])
            assert result.exit_code == 2 and "sees no CUDA GPU" in result.output, result.output
            assert not out.exists()


def test_train_uses_one_thread_unless_told(tmp_path, recorded_threads):
    seen = recorded_threads
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # torch's own count on a 2-core machine: not what train uses
    try:
        result = CliRunner().invoke(main, ["train", *TRAIN, "--out", str(tmp_path / "a")])
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(
            main, ["train", *TRAIN, "--out", str(tmp_path / "b"), "--threads", "3"]
        )
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 2  # restored after each command
    finally:
        torch.set_num_threads(previous)
    assert seen == [1, 3]


@pytest.mark.parametrize("command", ["train", "analyze", "compare", "sweep", "reproduce"])
def test_every_command_that_computes_says_threads_default_1(command):
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (
        "--threads" in text and "[default: 1; x>=1]" in text.split("--threads", 1)[1].split("--")[0]
    )
    assert "Every command that computes uses 1 unless told" in text
