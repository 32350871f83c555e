"""``hwsim analyze``: exit codes, files written, --json equal to the files, clear input errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hwsim.cli import main
from models.config import TrainConfig
from models.training import train

TINY = dict(dataset="digits", depth=2, width=16, epochs=2, train_size=300, batch_size=100, lr=0.01)
SMALL = [
    "--samples", "100", "--probes", "4", "--top-k", "1", "--no-slq", "--grid", "3",
    "--eps", "0,0.1", "--attacks", "fgsm", "--corruptions", "contrast,pixelate",
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # As in test_analysis_runs: tiny models, shared cores.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def run(one_thread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "fa"
    train(TrainConfig(algo="fa", **TINY), out)
    return out


def invoke(*args: str):
    return CliRunner().invoke(main, ["analyze", *args], terminal_width=120)


def test_all_writes_every_file_and_json_matches_them(run):
    result = invoke("all", str(run), *SMALL, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert list(printed) == ["hessian", "landscape", "alignment", "robustness"]
    for what, body in printed.items():
        assert json.loads((run / "analysis" / f"{what}.json").read_text()) == body
        assert (run / "analysis" / f"{what}.png").stat().st_size > 1000
    assert printed["hessian"]["probes"] == 4 and printed["hessian"]["density"] is None
    landscape = printed["landscape"]  # default span: where the quadratic model rises 1 nat
    span = math.sqrt(2 / landscape["surface"]["direction_eigenvalues"][0])
    assert landscape["span"] == span and landscape["surface"]["alphas"] == [-span, 0.0, span]
    assert printed["robustness"]["eps"] == [0.0, 0.1]
    assert list(printed["robustness"]["corruption_accuracy"]) == ["contrast", "pixelate"]
    assert printed["robustness"]["data"]["samples"] == 100


def test_summaries_are_readable(run):
    result = invoke("hessian", str(run), "--epochs", "0,2", *SMALL[:7])
    assert result.exit_code == 0, result.output
    hessian = json.loads((run / "analysis" / "hessian.json").read_text())
    assert f"{hessian['trace']:.4g}" in result.output
    assert "analysis/hessian.json" in result.output and "epoch" in result.output
    result = invoke("alignment", str(run))
    assert result.exit_code == 0, result.output
    alignment = json.loads((run / "analysis" / "alignment.json").read_text())
    for layer in alignment["layers"]:
        last = alignment["alignment_deg"][layer][-1]
        assert f"│ {layer} " in result.output and f"{last:.4g}" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["curvature", "."], "'curvature' is not one of 'hessian'"),
        (["hessian", "no/such/run"], "does not exist"),
        (["alignment", "RUN", "--probes", "3"], "do not apply to alignment"),
        (["robustness", "RUN", "--eps", "0.1,big"], "--eps expects comma-separated numbers"),
        (["hessian", "RUN", "--epochs", "0,9"], "epoch(s) 9"),
        (["robustness", "RUN", "--corruptions", "fog"], "unknown corruption"),
    ],
)
def test_bad_input_exits_2_with_a_message(run, args, message):
    result = invoke(*[str(run) if a == "RUN" else a for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
