import json

from click.testing import CliRunner

from hwsim.cli import main

ARGS = [
    "--dataset",
    "digits",
    "--depth",
    "2",
    "--width",
    "16",
    "--epochs",
    "1",
    "--train-size",
    "300",
    "--batch-size",
    "100",
    # float: the exact initial angle below (the default experiment's 8-bit B adds quantization
    # noise to it, docs/learning.md)
    "--weight-bits",
    "32",
    "--act-bits",
    "32",
]


def test_train_cli_writes_run(tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--algo", "ifa:45", *ARGS, "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert "ifa:45: completed" in result.output
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    assert all(abs(a - 45) < 1e-3 for a in rows[0]["alignment_deg"].values())


def test_train_cli_bad_input_exit_2_without_traceback(tmp_path):
    runner = CliRunner()
    for extra in (
        ["--algo", "ifa:200"],
        ["--dataset", "mnist"],
        ["--depth", "11"],
        ["--weight-bits", "1"],
        ["--train-size", "20"],
    ):
        result = runner.invoke(main, ["train", *ARGS, *extra, "--out", str(tmp_path / "x")])
        assert result.exit_code == 2, (extra, result.output)
        assert "Traceback" not in result.output and "error" in result.output.lower()


def test_train_cli_divergence_is_not_a_crash(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--algo",
            "fa",
            "--optimizer",
            "sgd",
            "--lr",
            "1e12",
            *ARGS,
            "--depth",
            "6",
            "--epochs",
            "3",
            "--out",
            str(tmp_path / "d"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "diverged" in result.output
