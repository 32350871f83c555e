"""Damaged training run directories: ``hwsim train`` (resume) and ``hwsim analyze`` either
recover by themselves or stop with one line naming the file, what is wrong and how to go on
(exit 2, no traceback)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from hwsim.cli import main

TRAIN = [
    "--algo", "fa", "--dataset", "digits", "--depth", "2", "--width", "16", "--epochs", "2",
    "--train-size", "300", "--batch-size", "100", "--lr", "0.01", "--quiet",
]  # fmt: skip
ANALYZE = ["--samples", "100", "--probes", "2", "--top-k", "1", "--no-slq"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, terminal_width=400)


def train(out: Path) -> Result:
    return invoke("train", *TRAIN, "--out", str(out))


def clean_error(result: Result, *fragments: str) -> str:
    """The one-line error of ``result``, checked: exit 2, no traceback, each fragment in it."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.fixture(scope="module")
def reference(one_thread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corrupt") / "ref"
    assert train(out).exit_code == 0
    return out


@pytest.fixture
def run(reference: Path, tmp_path: Path) -> Path:
    """A private copy of the finished reference run."""
    target = tmp_path / "run"
    shutil.copytree(reference, target)
    return target


@pytest.fixture
def unfinished(run: Path) -> Path:
    """The copy as a crash before ``result.json`` leaves it (resuming finishes it)."""
    (run / "result.json").unlink()
    return run


def same_as_reference(run: Path, reference: Path) -> None:
    assert (run / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()
    for key in ("status", "epochs_completed", "final_test_accuracy", "best_test_accuracy"):
        got = json.loads((run / "result.json").read_text())[key]
        assert got == json.loads((reference / "result.json").read_text())[key], key


# --------------------------------------------------------------------------- checkpoint.pt


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:10], id="cut-at-start"),
        pytest.param(lambda b: b"\x00garbage" * 100, id="garbage"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_broken_checkpoint_names_it_and_deleting_it_retrains(unfinished, reference, damage):
    ckpt = unfinished / "checkpoint.pt"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    message = clean_error(train(unfinished), str(ckpt), "--force", "delete checkpoint.pt")
    assert "\n" not in message
    # Following the advice: delete it, run the same command again.
    ckpt.unlink()
    assert train(unfinished).exit_code == 0
    same_as_reference(unfinished, reference)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param({"model": {}}, id="missing-keys"),
        pytest.param([1, 2, 3], id="a-list"),
        pytest.param("epoch", id="a-string"),
        pytest.param("wrong-model", id="wrong-state-dict"),
        pytest.param("bad-epoch", id="bad-epoch"),
    ],
)
def test_checkpoint_with_wrong_content_is_a_clean_error(unfinished, content):
    ckpt = unfinished / "checkpoint.pt"
    if content in ("wrong-model", "bad-epoch"):
        state = torch.load(ckpt, weights_only=True)
        if content == "wrong-model":
            state["model"] = {"layer.weight": torch.zeros(3)}
        else:
            state["epoch"] = 99
        content = state
    torch.save(content, ckpt)
    clean_error(train(unfinished), str(ckpt), "--force")


def test_broken_snapshot_is_named_by_analyze(run):
    snapshot = run / "snapshots" / "epoch-0001.pt"
    snapshot.write_bytes(snapshot.read_bytes()[:100])
    result = invoke("analyze", "hessian", str(run), *ANALYZE, "--epochs", "1")
    clean_error(result, str(snapshot))
    # training never reads snapshots: the finished run is still returned as it is
    assert train(run).exit_code == 0


def test_stray_files_in_snapshots_are_ignored(run):
    (run / "snapshots" / "epoch-copy.pt").write_bytes(b"x")
    (run / "snapshots" / "epoch-0001.pt.tmp").write_bytes(b"x")
    result = invoke("analyze", "hessian", str(run), *ANALYZE, "--epochs", "all")
    assert result.exit_code == 0, result.output


def test_broken_checkpoint_is_named_by_analyze(run):
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a zip")
    clean_error(invoke("analyze", "hessian", str(run), *ANALYZE), str(run / "checkpoint.pt"))


# --------------------------------------------------------------------------- metrics.jsonl


def _cut_last_line(path: Path, keep: float = 0.5) -> None:
    text = path.read_text()
    head, last = text[:-1].rsplit("\n", 1)
    path.write_text(head + "\n" + last[: int(len(last) * keep)])


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.99])
def test_torn_metrics_tail_resumes_by_itself(unfinished, reference, keep):
    _cut_last_line(unfinished / "metrics.jsonl", keep)
    assert train(unfinished).exit_code == 0
    same_as_reference(unfinished, reference)


def test_torn_metrics_tail_of_a_finished_run_is_restored(run, reference):
    _cut_last_line(run / "metrics.jsonl")
    assert train(run).exit_code == 0
    same_as_reference(run, reference)


def test_torn_metrics_tail_after_an_interrupted_epoch(tmp_path, reference):
    """A crash after epoch 2's row but before its checkpoint, with that row torn."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / "result.json").unlink()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    # Rebuild the epoch-1 checkpoint by resuming a 1-epoch copy is not possible from here, so
    # cut two rows' worth: keep epochs 0 and a torn 1 with the epoch-2 checkpoint.
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text(lines[0] + lines[1][:20])
    message = clean_error(train(run), "metrics.jsonl", "epoch 2", "--force")
    assert "lost" in message


def test_malformed_metrics_line_in_the_middle_names_file_and_line(unfinished):
    path = unfinished / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:30] + "\n"
    path.write_text("".join(lines))
    clean_error(train(unfinished), f"{path}:2", "invalid JSON")
    clean_error(invoke("analyze", "alignment", str(unfinished)), f"{path}:2")


@pytest.mark.parametrize(
    "row",
    [
        {"epoch": "1", "test_accuracy": 0.5},
        {"epoch": 1, "test_accuracy": None},
        {"epoch": 1, "test_accuracy": [0.5]},
        {"epoch": 5, "test_accuracy": 0.5},
        {"epoch": 1, "test_accuracy": 0.5, "diverged": "no"},
    ],
)
def test_metrics_row_with_wrong_types_is_a_clean_error(run, row):
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = json.dumps({**json.loads(lines[1]), **row}) + "\n"
    path.write_text("".join(lines))
    clean_error(train(run), str(path), "row 2")


@pytest.mark.parametrize(
    "change",
    [
        {"alignment_deg": None},
        {"alignment_deg": [1, 2]},
        {"alignment_deg": {"0": "x"}},
        {"update_angle_deg": 3},
        {"epoch": None},
    ],
)
def test_analyze_alignment_with_wrong_metrics_types(run, change):
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = json.dumps({**json.loads(lines[1]), **change}) + "\n"
    path.write_text("".join(lines))
    clean_error(invoke("analyze", "alignment", str(run)), str(path))


# --------------------------------------------------------------------------- config, result


@pytest.mark.parametrize(
    "text",
    [
        "algo: [unclosed\n",
        "{{{\n",
        "- a list\n",
        "just a string\n",
        "algo: 5\n",
        "epochs: two\n",
        "\x00\x01",
    ],
)
def test_broken_config_yaml_names_the_file(unfinished, text):
    (unfinished / "config.yaml").write_text(text)
    clean_error(train(unfinished), str(unfinished / "config.yaml"), "--force")
    clean_error(invoke("analyze", "alignment", str(unfinished)), "config.yaml")
    # --force starts the run over, as the message says
    assert invoke("train", *TRAIN, "--out", str(unfinished), "--force").exit_code == 0


def test_config_yaml_with_wrong_types_after_a_finished_run(run):
    path = run / "config.yaml"
    path.write_text(path.read_text().replace("epochs: 2", "epochs: '2'"))
    clean_error(train(run), str(path), "epochs")


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        "[]",
        "null",
        '{"status": "completed"}',
        '{"status": 3, "epochs_completed": 2}',
        '{"status": "completed", "epochs_completed": "2"}',
        '{"status": "completed", "epochs_completed": -1}',
    ],
)
def test_broken_result_json_names_the_file_and_deleting_it_finishes(run, reference, text):
    path = run / "result.json"
    path.write_text(text)
    clean_error(train(run), str(path), "delete result.json", "--force")
    path.unlink()
    assert train(run).exit_code == 0
    same_as_reference(run, reference)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param([1, 2], id="a-list"),
        pytest.param({"epoch": 2}, id="no-model"),
        pytest.param("wrong-model", id="wrong-state-dict"),
        pytest.param("bad-config", id="bad-config"),
    ],
)
def test_analyze_checkpoint_with_wrong_content(run, content):
    ckpt = run / "checkpoint.pt"
    if content in ("wrong-model", "bad-config"):
        state = torch.load(ckpt, weights_only=True)
        if content == "wrong-model":
            state["model"] = {"layer.weight": torch.zeros(3)}
        else:
            state["config"] = {"epochs": "two"}
        content = state
    torch.save(content, ckpt)
    clean_error(invoke("analyze", "hessian", str(run), *ANALYZE), str(ckpt))


@pytest.mark.parametrize(
    "content",
    [
        pytest.param([1, 2], id="a-list"),
        pytest.param({"layer.weight": torch.zeros(3)}, id="wrong-state-dict"),
    ],
)
def test_analyze_snapshot_with_wrong_content(run, content):
    snapshot = run / "snapshots" / "epoch-0001.pt"
    torch.save(content, snapshot)
    result = invoke("analyze", "hessian", str(run), *ANALYZE, "--epochs", "1")
    clean_error(result, str(snapshot))


def test_snapshot_of_the_checkpoint_epoch_cut_short_is_written_again(unfinished, reference):
    snapshot = unfinished / "snapshots" / "epoch-0002.pt"
    snapshot.write_bytes(snapshot.read_bytes()[:50])
    assert train(unfinished).exit_code == 0
    same_as_reference(unfinished, reference)
    got = torch.load(snapshot, weights_only=True)
    want = torch.load(reference / "snapshots" / "epoch-0002.pt", weights_only=True)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
