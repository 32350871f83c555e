"""``hwsim analyze``: exit codes, files written, --json equal to the files, clear input errors;
and the figures, which ``hwsim.render.analysis`` redraws from the saved JSON alone."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.models.config import TrainConfig
from hwsim.models.training import train
from hwsim.render.analysis import ANALYSIS_FIGURES, analysis_png, write_analysis_figure

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


@pytest.fixture(scope="module")
def analyzed(run: Path):
    """``hwsim analyze all RUN --json``, run once for the module."""
    return invoke("all", str(run), *SMALL, "--json")


def drawn_from_its_json(run: Path, what: str) -> bool:
    """Whether ``what.png`` in ``run`` is exactly the figure of ``what.json`` beside it."""
    folder = run / "analysis"
    return (folder / f"{what}.png").read_bytes() == analysis_png(
        json.loads((folder / f"{what}.json").read_text())
    )


def test_all_writes_every_file_and_json_matches_them(run, analyzed):
    result = analyzed
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert list(printed) == ["hessian", "landscape", "alignment", "robustness"]
    for what, body in printed.items():
        assert json.loads((run / "analysis" / f"{what}.json").read_text()) == body
        assert (run / "analysis" / f"{what}.png").stat().st_size > 1000
        assert drawn_from_its_json(run, what)
    files = sorted(p.name for p in (run / "analysis").iterdir())
    assert files == [f"{w}.{ext}" for w in sorted(printed) for ext in ("json", "png")] + [
        "surrogate"
    ]
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
    assert "analysis/hessian.png" in result.output
    assert list(hessian["by_epoch"]) == ["0", "2"] and drawn_from_its_json(run, "hessian")
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


_REDRAW = """
import sys
from hwsim.render.analysis import write_analysis_figure
for what in sys.argv[2:]:
    write_analysis_figure(sys.argv[1], what)
heavy = sorted(m for m in ("torch", "hwsim.models", "hwsim.experiments") if m in sys.modules)
assert not heavy, heavy
"""


def test_figures_redraw_from_the_json_alone(run, analyzed, tmp_path):
    assert analyzed.exit_code == 0, analyzed.output
    names = list(ANALYSIS_FIGURES)
    # Only the saved results: no checkpoint, snapshots, metrics or config to recompute from.
    copy = tmp_path / "copy"
    (copy / "analysis").mkdir(parents=True)
    for what in names:
        shutil.copy(run / "analysis" / f"{what}.json", copy / "analysis")
    # In a fresh interpreter, so that it shows the renderer never imports torch or the models.
    done = subprocess.run(
        [sys.executable, "-c", _REDRAW, str(copy), *names], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for what in names:
        command_wrote = (run / "analysis" / f"{what}.png").read_bytes()
        assert (copy / "analysis" / f"{what}.png").read_bytes() == command_wrote
        (copy / "analysis" / f"{what}.png").unlink()
        # In this process too, through the public function, returning where it wrote.
        assert write_analysis_figure(copy, what) == copy / "analysis" / f"{what}.png"
        assert (copy / "analysis" / f"{what}.png").read_bytes() == command_wrote
    assert not list((copy / "analysis").glob("*.tmp"))


def test_write_analysis_figure_input_errors(run, tmp_path):
    with pytest.raises(InputError, match=r"analysis/hessian\.json: missing"):
        write_analysis_figure(tmp_path, "hessian")
    with pytest.raises(InputError, match="unknown analysis 'curvature'"):
        write_analysis_figure(run, "curvature")
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "landscape.json").write_text('{"analysis": "hessian"}')
    with pytest.raises(InputError, match="holds analysis 'hessian', expected 'landscape'"):
        write_analysis_figure(tmp_path, "landscape")
    (tmp_path / "analysis" / "landscape.json").write_text('{"analysis": ')
    with pytest.raises(InputError, match=r"landscape\.json:1: invalid JSON"):
        write_analysis_figure(tmp_path, "landscape")
    (tmp_path / "analysis" / "landscape.json").write_text('{"analysis": "landscape"}')
    with pytest.raises(InputError, match=r"landscape\.json: cannot draw it \(KeyError"):
        write_analysis_figure(tmp_path, "landscape")
    assert not list((tmp_path / "analysis").glob("*.png"))


def test_at_loss_summary_says_what_was_measured_or_that_it_was_never_reached(run):
    from hwsim.models.training import read_metrics

    recorded = [row["train_loss"] for row in read_metrics(run)]
    result = invoke("hessian", str(run), "--at-loss", repr(recorded[1]), *SMALL[:7])
    assert result.exit_code == 0, result.output
    at = json.loads((run / "analysis" / "hessian.json").read_text())["at_loss"]
    assert at["epoch"] == 1
    assert f"at training loss ≤ {recorded[1]:g}: epoch 1" in result.output
    assert f"{at['curvature']['trace']:.4g}" in result.output
    assert drawn_from_its_json(run, "hessian")
    lowest = min(recorded)
    result = invoke("hessian", str(run), "--at-loss", repr(lowest / 2), *SMALL[:7])
    assert result.exit_code == 0, result.output
    expected = f"never reached (lowest loss {lowest:.4g} at epoch {recorded.index(lowest)})"
    assert expected in result.output
    assert drawn_from_its_json(run, "hessian")
    # The figure says it too; a file from before at_loss existed draws as it always did.
    saved = json.loads((run / "analysis" / "hessian.json").read_text())
    old = {k: v for k, v in saved.items() if k != "at_loss"}
    assert analysis_png(old) == analysis_png({**old, "at_loss": None}) != analysis_png(saved)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hessian", "RUN", "--at-loss", "-1"], "at_loss must be a positive training loss"),
        (["landscape", "RUN", "--at-loss", "0.3"], "at_loss do not apply to landscape"),
        (["hessian", "RUN", "--device", "tpu"], "'tpu' is not one of 'auto', 'cpu', 'cuda'"),
    ],
)
def test_at_loss_and_device_input_errors_exit_2(run, args, message):
    result = invoke(*[str(run) if a == "RUN" else a for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_device_cpu_runs_on_the_cpu(run):
    result = invoke("hessian", str(run), "--device", "cpu", *SMALL[:7], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["device"] == "cpu"
    # Alignment computes nothing, so it takes any device and records none.
    result = invoke("alignment", str(run), "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_exits_2(run):
    result = invoke("hessian", str(run), "--device", "cuda", *SMALL[:7])
    assert result.exit_code == 2, result.output
    assert "sees no CUDA GPU" in result.output and "--device cpu" in result.output
    assert "Traceback" not in result.output
    assert not (run / "analysis" / "hessian.tmp").exists()


def test_device_choices_are_the_helpers():
    from hwsim.cli.analyze import DEVICE_CHOICES
    from hwsim.models.device import DEVICE_CHOICES as HELPER_CHOICES

    assert DEVICE_CHOICES == HELPER_CHOICES


def test_threads_default_1_and_as_asked(run, recorded_threads):
    """``--threads`` (default 1) is applied with the helper every command uses."""
    seen = recorded_threads
    torch.set_num_threads(2)  # the module's fixture restores its own count afterwards
    for extra in ([], ["--threads", "3"]):
        result = invoke("hessian", str(run), "--device", "cpu", *SMALL[:7], "--json", *extra)
        assert result.exit_code == 0, result.output
    assert seen == [1, 3] and torch.get_num_threads() == 2
    torch.set_num_threads(1)
