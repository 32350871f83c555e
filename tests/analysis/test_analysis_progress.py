"""Progress bars show an ETA, and ``hwsim analyze``'s bar has a total to estimate it from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from rich.progress import Progress, TimeRemainingColumn

import hwsim.cli.analyze as analyze_cli
from hwsim.cli import main
from hwsim.cli.common import progress_bar
from hwsim.core.errors import InputError
from hwsim.experiments.analysis import ANALYSES, analysis_names, analyze
from hwsim.models import TrainConfig, train


def test_the_shared_bar_has_an_eta_column():
    columns = progress_bar(quiet=True).columns
    assert any(isinstance(c, TimeRemainingColumn) for c in columns)


def test_analysis_names():
    assert analysis_names("all") == list(ANALYSES)
    assert analysis_names("alignment") == ["alignment"]
    with pytest.raises(InputError, match="unknown analysis"):
        analysis_names("nope")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("progress") / "fa"
    config = TrainConfig(
        algo="fa", dataset="digits", depth=2, width=8, epochs=1, batch_size=100, train_size=200
    )
    train(config, out)
    return out


def test_on_done_is_called_after_each_analysis(run: Path):
    seen: list[tuple[str, Any]] = []
    result = analyze(run, "alignment", on_done=lambda name, r: seen.append((name, r)))
    assert seen == [("alignment", result)]


class _Recorder(Progress):
    """A Progress that remembers its tasks' totals and progress when it stops."""

    finished: ClassVar[list[tuple[float | None, float]]] = []

    def stop(self) -> None:
        _Recorder.finished = [(t.total, t.completed) for t in self.tasks]
        super().stop()


def test_analyze_bar_has_a_total_and_reaches_it(run: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        analyze_cli, "progress_bar", lambda quiet: _Recorder(*progress_bar(quiet).columns)
    )
    result = CliRunner().invoke(main, ["analyze", "alignment", str(run)])
    assert result.exit_code == 0, result.output
    assert _Recorder.finished == [(1, 1)]
    assert "fc1" in result.output and "fc2" in result.output
