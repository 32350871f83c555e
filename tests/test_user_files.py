"""The user's files are sacred: output directories through the CLI (issue 10).

Every command that writes a directory refuses one that holds files hwsim did not write,
``--force`` replaces only what hwsim wrote (its manifest), an empty ``--out`` is an error, an
unwritable one a clean message, and a compare run cut short while writing its report is
finished by running the same command again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.files import MANIFEST

TRAIN = ["train", "--dataset", "digits", "--depth", "2", "--width", "8", "--epochs", "1"]


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def users_dir(tmp_path: Path) -> Path:
    """A directory of the user's own, with names hwsim also uses."""
    out = tmp_path / "mine"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "holiday.png").write_bytes(b"\x89PNG user")
    (out / "notes.txt").write_text("do not lose me")
    (out / "metrics.jsonl").write_text('{"not": "hwsim\'s"}\n')
    return out


@pytest.mark.parametrize(
    "command",
    [
        ["compare", "--epochs", "1"],
        TRAIN,
        ["sweep", "depth", "--depths", "2", "--epochs", "1", "--dataset", "digits"],
        ["reproduce", "--dataset", "digits"],
    ],
    ids=["compare", "train", "sweep", "reproduce"],
)
def test_a_directory_hwsim_did_not_write_is_refused_even_with_force(command, users_dir):
    before = _tree(users_dir)
    for extra in ([], ["--force"]):
        result = _run(*command, "--out", str(users_dir), *extra)
        assert result.exit_code == 2, result.output
        assert str(users_dir) in result.output and "hwsim" in result.output
        assert _tree(users_dir) == before  # nothing written, nothing removed
        assert not (users_dir / MANIFEST).exists()


def test_force_replaces_only_what_hwsim_wrote(tmp_path: Path):
    out = tmp_path / "run"
    assert _run(*TRAIN, "--out", str(out), "--quiet").exit_code == 0
    written = set(_tree(out))
    assert {"config.yaml", "metrics.jsonl", "result.json", "checkpoint.pt"} <= written
    # the user files notes beside the run, and inside a directory hwsim made
    (out / "notes.txt").write_text("mine")
    (out / "snapshots" / "my-copy.pt").write_bytes(b"mine too")
    assert _run(*TRAIN, "--out", str(out), "--quiet").exit_code == 0  # finished: resumes as is
    assert _run(*TRAIN, "--out", str(out), "--quiet", "--force").exit_code == 0
    after = _tree(out)
    assert after["notes.txt"] == b"mine" and after["snapshots/my-copy.pt"] == b"mine too"
    assert set(after) == written | {"notes.txt", "snapshots/my-copy.pt"}


@pytest.mark.parametrize("command", [["compare"], TRAIN, ["sweep", "depth"], ["reproduce"]])
def test_an_empty_out_is_an_error(command, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run(*command, "--out", "")
    assert result.exit_code == 2
    assert "--out" in result.output and "empty" in result.output
    assert list(tmp_path.iterdir()) == []  # not the current directory, not the default


def test_an_unwritable_out_is_a_clean_error(tmp_path: Path):
    (tmp_path / "a-file").write_text("x")
    for out, reason in (
        (tmp_path / "a-file" / "run", "Not a directory"),
        (Path("/proc/hwsim-test/run"), "No such file or directory"),
    ):
        result = _run(*TRAIN, "--out", str(out))
        assert result.exit_code == 2, result.output
        assert f"--out {out}: cannot write there ({reason})" in result.output
        assert not out.exists()


def test_a_compare_cut_short_while_writing_its_report_finishes_on_rerun(tmp_path: Path):
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text(
        "version: 1\nname: tiny\ndataset: {name: digits, train_size: 200}\n"
        "network: {model: mlp, depth: 2, width: 8}\ntraining: {epochs: 1, batch_size: 100}\n"
        "seeds: [0]\nrules: [bp, ifa]\nchips: [edge_sram]\n"
    )
    out = tmp_path / "run"
    args = ["compare", "--experiment", str(experiment), "--out", str(out), "--quiet"]
    assert _run(*args).exit_code == 0
    finished = _tree(out)
    # as if killed after summary.json, before the figures and the report were written
    shutil.rmtree(out / "figures")
    for name in ("report.md", "report.html"):
        (out / name).unlink()
    (bp_run,) = (out / "runs").glob("bp-seed0-*")
    trained = (bp_run / "result.json").stat().st_mtime_ns
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert (bp_run / "result.json").stat().st_mtime_ns == trained  # no retraining
    assert _tree(out) == finished  # the same report, byte for byte
    again = _run(*args)  # a finished run is re-priced, not refused: the same bytes again
    assert again.exit_code == 0, again.output
    assert _tree(out) == finished
