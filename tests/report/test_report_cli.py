"""`hwsim report` through the CLI, bad run directories, and atomic replacement of a report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import hwsim.core.files
import hwsim.render.compare_figures
from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.render.report import write_report


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), terminal_width=200)


def test_cli_regenerates_the_report(run_copy: Path) -> None:
    (run_copy / "report.md").unlink()
    result = invoke("report", str(run_copy))
    assert result.exit_code == 0, result.output
    assert str(run_copy / "report.md") in result.output
    assert str(run_copy / "report.html") in result.output
    assert (run_copy / "report.md").read_text().startswith("# ")


def test_cli_without_summary_exits_2_without_traceback(tmp_path: Path) -> None:
    result = invoke("report", str(tmp_path))
    assert result.exit_code == 2
    assert f"{tmp_path / 'summary.json'}: missing" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, InputError)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: (d / "summary.json").write_text("{not json"), "summary.json:1: invalid JSON"),
        (lambda d: (d / "summary.json").write_text('{"format": "other"}'), "not a compare summary"),
        (
            lambda d: (d / "simulation" / "dfa_prng" / "ifa.json").unlink(),
            "simulation/dfa_prng/ifa.json: missing",
        ),
        (
            lambda d: (next((d / "runs").glob("fa-seed1-*")) / "metrics.jsonl").unlink(),
            "runs/fa-seed1-*/metrics.jsonl: missing",
        ),
        (lambda d: (d / "experiment.yaml").unlink(), "experiment.yaml: missing"),
        (lambda d: (d / "chips" / "edge_sram.yaml").unlink(), "chips/edge_sram.yaml: missing"),
    ],
)
def test_broken_run_directory_is_named(run_copy: Path, change, message: str) -> None:
    change(run_copy)
    pattern = message.replace(".", r"\.").replace("*", "[0-9a-f]+")  # a run's key
    with pytest.raises(InputError, match=pattern):
        write_report(run_copy)
    result = invoke("report", str(run_copy))
    assert result.exit_code == 2 and re.search(pattern, result.output)


def test_summary_missing_a_rule_is_refused(run_copy: Path) -> None:
    summary = json.loads((run_copy / "summary.json").read_text())
    del summary["chips"]["edge_sram"]["rules"]["fa"]
    (run_copy / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match=r"chips\.edge_sram\.rules: missing key 'fa'"):
        write_report(run_copy)


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    paths = [run_dir / "report.md", run_dir / "report.html", *(run_dir / "figures").glob("*")]
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in paths}


def test_failing_figure_leaves_the_previous_report_intact(run_copy: Path, monkeypatch) -> None:
    before = _snapshot(run_copy)

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(hwsim.render.compare_figures, "timeline_figure", broken)
    (next((run_copy / "runs").glob("bp-seed0-*")) / "metrics.jsonl").write_text(
        (next((run_copy / "runs").glob("bp-seed1-*")) / "metrics.jsonl").read_text()
    )  # the new report would differ, so an overwrite would show
    with pytest.raises(RuntimeError, match="figure failed"):
        write_report(run_copy)
    assert _snapshot(run_copy) == before
    assert not list(run_copy.rglob("*.tmp"))


def test_failing_write_leaves_the_previous_html_intact(run_copy: Path, monkeypatch) -> None:
    before = (run_copy / "report.html").read_bytes()
    real_replace = hwsim.core.files.os.replace

    def replace(src, dst):
        if Path(dst).name == "report.html":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(hwsim.core.files.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(run_copy)
    assert (run_copy / "report.html").read_bytes() == before
    assert not (run_copy / "report.html.tmp").exists()
