"""Executors (local, processes, ray): the same sweep.json as the local loop, only the driver writes
points.jsonl, failures retried or reported by name, Ctrl-C and killed workers lose no finished
point, and clear exit-2 errors for bad options (docs/reproduce.md, "Executors")."""

from __future__ import annotations

import builtins
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import executor_jobs
import pytest
from click.testing import CliRunner

from hwsim.cli import main
from hwsim.core.errors import InputError
from hwsim.experiments.executors import (
    RAY_INSTALL_HINT,
    FailedPointsError,
    LocalExecutor,
    ProcessExecutor,
    make_executor,
)
from hwsim.experiments.sweeps import _claim_out, make_spec, run_sweep
from hwsim.models.config import TrainConfig

#: The smallest sweep the other sweep tests use: 2 depths × 2 rules × 2 seeds on digits.
ARGS = [
    *("depth", "--depths", "2,3", "--algo", "fa,ifa", "--seeds", "0,1", "--dataset", "digits"),
    *("--width", "16", "--epochs", "2", "--lr", "0.01", "--quiet"),
    *("--weight-bits", "32", "--act-bits", "32"),  # float, as BASE below (the default is 8-bit)
]
BASE = TrainConfig(dataset="digits", depth=6, width=16, epochs=2, lr=0.01, snapshots=False)
POINTS = 8
#: The torch-free jobs of the executor tests start in fresh interpreters: spawn is quick for them,
#: and leaves the fork server (started once per process) to the sweeps' module.
SPAWN = "spawn"


def _spec():
    """ARGS as an API spec (the same sweep-spec.json as the command writes)."""
    return make_spec("depth", base=BASE, values=(2, 3), rules=("fa", "ifa"), seeds=(0, 1))


def _run(out: Path, *extra: str):
    return CliRunner().invoke(main, ["sweep", *ARGS, "--out", str(out), *extra])


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]


def _comparable(out: Path) -> dict:
    """sweep.json without the wall-clock total (the only field that depends on timing)."""
    summary = json.loads((out / "sweep.json").read_text())
    return {k: v for k, v in summary.items() if k not in ("compute_s", "environment")}


def _by_point(out: Path) -> dict[str, dict]:
    """points.jsonl by point id, without wall_s; every point exactly once."""
    lines = _lines(out)
    ids = [p["point"] for p in lines]
    assert len(ids) == len(set(ids)), f"a point written twice: {ids}"
    return {p["point"]: {k: v for k, v in p.items() if k != "wall_s"} for p in lines}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The sweep run by the local executor (one torch thread, the default)."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    result = _run(out)
    assert result.exit_code == 0, result.output
    return out


# --------------------------------------------------------------------------- the executors alone


def test_process_executor_retries_a_failed_attempt(tmp_path):
    with ProcessExecutor(workers=2, threads=1, retries=1, start_method=SPAWN) as executor:
        items = [(str(tmp_path), n) for n in range(5)]
        outcomes = list(executor.map_unordered(executor_jobs.fail_first_attempt, items))
    assert sorted(o.result for o in outcomes) == [0, 1, 4, 9, 16]
    assert all(o.ok and o.attempts == 2 for o in outcomes)


def test_process_executor_reports_what_fails_every_attempt(tmp_path):
    started = []
    with ProcessExecutor(workers=2, threads=1, retries=2, start_method=SPAWN) as executor:
        items = [(str(tmp_path), n) for n in range(5)]
        outcomes = list(
            executor.map_unordered(executor_jobs.always_fail_on_3, items, on_start=started.append)
        )
    failed = [o for o in outcomes if not o.ok]
    assert len(outcomes) == 5 and len(failed) == 1
    assert failed[0].item[1] == 3 and failed[0].attempts == 3
    assert failed[0].error == "ValueError: item 3 is bad"
    assert (tmp_path / "attempts-3").read_text() == "xxx"
    assert sorted(i[1] for i in started) == [0, 1, 2, 3, 3, 3, 4]
    assert sorted(o.result for o in outcomes if o.ok) == [0, 1, 4, 16]


def test_process_executor_survives_a_killed_worker(tmp_path):
    with ProcessExecutor(workers=2, threads=1, retries=1, start_method=SPAWN) as executor:
        items = [(str(tmp_path), n) for n in range(6)]
        outcomes = list(executor.map_unordered(executor_jobs.die_on_first_attempt_at_2, items))
    assert (tmp_path / "died").exists()
    assert sorted(o.result for o in outcomes) == [0, 1, 4, 9, 16, 25]
    assert all(o.ok for o in outcomes)


def test_closing_the_results_stops_the_work_still_running(tmp_path):
    executor = ProcessExecutor(workers=2, threads=1, retries=0, start_method=SPAWN)
    items = [(str(tmp_path), n) for n in range(4)]
    outcomes = executor.map_unordered(executor_jobs.sleep_unless_0, items)
    started = time.monotonic()
    assert next(outcomes).result == 0
    while not (tmp_path / "pid-1").exists():  # item 1 runs in the other worker
        time.sleep(0.05)
    outcomes.close()  # what Ctrl-C in the driver does (the generator's finally)
    assert time.monotonic() - started < 30
    pid = int((tmp_path / "pid-1").read_text())
    assert not _alive(pid)
    assert not (tmp_path / "pid-2").exists() and not (tmp_path / "pid-3").exists()
    executor.close()


def _alive(pid: int) -> bool:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.05)
    return True


def test_local_executor_is_the_plain_loop(tmp_path):
    with LocalExecutor() as executor:
        outcomes = executor.map_unordered(executor_jobs.square, [("", 1), ("", 2)])
        assert [o.result for o in outcomes] == [1, 4]
        with pytest.raises(ValueError, match="item 3 is bad"):  # propagates, as a loop would
            list(executor.map_unordered(executor_jobs.always_fail_on_3, [(str(tmp_path), 3)]))


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("threads", {}, "unknown executor 'threads'"),
        ("processes", {"address": "10.0.0.1:6379"}, "--address is for --executor ray"),
        ("local", {"address": "10.0.0.1:6379"}, "--address is for --executor ray"),
        ("processes", {"workers": 0}, "--workers must be at least 1"),
        ("local", {"workers": 2}, "--workers is for --executor processes or ray"),
        ("processes", {"threads": 0}, "--threads must be at least 1"),
        ("processes", {"retries": -1}, "--retries must be at least 0"),
    ],
)
def test_make_executor_refuses_bad_settings(name, options, message):
    with pytest.raises(InputError, match=message):
        make_executor(name, **options)


def test_processes_default_to_cores_over_threads():
    cores = len(os.sched_getaffinity(0))
    assert make_executor("processes").workers == cores
    assert make_executor("processes", threads=cores).workers == 1
    assert make_executor("processes", workers=3).workers == 3


@pytest.fixture
def without_ray(monkeypatch):
    """``import ray`` fails, as where the extra is not installed."""
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_ray)


def test_ray_without_ray_installed_is_exit_2_with_the_install_hint(tmp_path, without_ray):
    with pytest.raises(InputError, match="pip install 'hwsim\\[ray\\]'"):
        make_executor("ray")
    for command in (["sweep", *ARGS], ["reproduce", "--quiet"]):
        result = CliRunner().invoke(
            main, [*command, "--out", str(tmp_path / "out"), "--executor", "ray"]
        )
        assert result.exit_code == 2, result.output
        assert RAY_INSTALL_HINT in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "points.jsonl").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--executor", "threads"], "Invalid value for '--executor'"),
        (["--address", "10.0.0.1:6379"], "--address is for --executor ray, not local"),
        (["--executor", "processes", "--workers", "0"], "Invalid value for '--workers'"),
        (["--executor", "processes", "--retries", "-1"], "Invalid value for '--retries'"),
        (["--workers", "2"], "--workers is for --executor processes or ray"),
    ],
)
@pytest.mark.parametrize("command", ["sweep", "reproduce"])
def test_bad_executor_options_are_exit_2(tmp_path, command, extra, message):
    args = ["sweep", *ARGS] if command == "sweep" else ["reproduce", "--quiet"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out"), *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- sweeps


def test_processes_give_the_local_sweep_json(tmp_path, reference):
    out = tmp_path / "sweep"
    result = _run(out, "--executor", "processes", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert _comparable(out) == _comparable(reference)
    assert _by_point(out) == _by_point(reference)  # the lines may be in another order


def test_killed_worker_loses_no_finished_point_and_rerun_resumes(tmp_path, reference):
    """SIGKILL a worker mid-sweep, no retries: the points in flight are reported as failed, every
    finished point is kept (once), and the same sweep run again completes to the same result."""
    out = tmp_path / "sweep"
    killed = []

    def kill_a_worker(point, index, total, state):
        if state == "done" and not killed:
            worker = multiprocessing.active_children()[0]
            killed.append(worker.pid)
            os.kill(worker.pid, signal.SIGKILL)

    with (
        ProcessExecutor(workers=2, threads=1, retries=0) as executor,
        pytest.raises(FailedPointsError) as failure,
    ):
        run_sweep(_spec(), out, on_point=kill_a_worker, executor=executor)
    assert killed
    failed = [name for name, _ in failure.value.failures]
    assert failed and all("BrokenProcessPool" in error for _, error in failure.value.failures)
    assert str(out) in str(failure.value) and failed[0] in str(failure.value)
    finished = _by_point(out)
    assert len(finished) + len(failed) == POINTS and not set(failed) & set(finished)
    assert not (out / "sweep.json").exists()
    for name, record in finished.items():
        assert record == _by_point(reference)[name]

    with ProcessExecutor(workers=2, threads=1, retries=0) as executor:
        run_sweep(_spec(), out, executor=executor)
    assert _comparable(out) == _comparable(reference)
    assert _by_point(out) == _by_point(reference)


def test_failing_point_is_retried_then_named_and_exit_1(tmp_path, reference):
    """A point whose run directory is damaged fails in its worker on every attempt: the command
    exits 1 naming it after every other point is saved; repaired, the rerun completes."""
    out = tmp_path / "sweep"
    _claim_out(out, _spec(), force=False)  # a sweep begun earlier, as the command claims it
    bad = out / "runs" / "depth3_fa_seed1"
    bad.mkdir(parents=True)
    (bad / "config.yaml").write_text("{not yaml: [")
    result = _run(out, "--executor", "processes", "--workers", "2", "--retries", "1")
    assert result.exit_code == 1, result.output
    assert "1 point(s) of the depth sweep" in result.output
    assert "depth3_fa_seed1: InputError:" in result.output and "Traceback" not in result.output
    assert sorted(_by_point(out)) == sorted(set(_by_point(reference)) - {"depth3_fa_seed1"})
    assert not (out / "sweep.json").exists()

    (bad / "config.yaml").unlink()
    result = _run(out, "--executor", "processes", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert _comparable(out) == _comparable(reference)
    assert _by_point(out) == _by_point(reference)


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_keeps_finished_points(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while points run in
    worker processes: exit 130, finished points kept, no worker left; the rerun completes."""
    out = tmp_path / "sweep"
    args = [*ARGS, "--epochs", "6", "--out", str(out), "--executor", "processes", "--workers", "2"]
    launch = [sys.executable, "-c", "import sys; from hwsim.cli import main; sys.exit(main())"]
    command = [*launch, "sweep", *args]
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    points = out / "points.jsonl"
    deadline = time.monotonic() + 120
    while not (points.exists() and points.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    for _ in range(200):  # the workers (same process group) are gone
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("worker processes outlived the interrupted sweep")
    kept = _by_point(out)
    assert 1 <= len(kept) < POINTS
    result = CliRunner().invoke(main, ["sweep", *args])
    assert result.exit_code == 0, result.output
    assert {k: _by_point(out)[k] for k in kept} == kept
    assert len(_by_point(out)) == POINTS


@pytest.mark.slow
def test_ray_gives_the_local_sweep_json(tmp_path, reference):
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'hwsim[ray]'")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        out = tmp_path / "sweep"
        result = _run(out, "--executor", "ray")
        assert result.exit_code == 0, result.output
    finally:
        ray.shutdown()
    assert _comparable(out) == _comparable(reference)
    assert _by_point(out) == _by_point(reference)


@pytest.mark.slow
def test_reproduce_with_processes_equals_local(tmp_path):
    """The tiny reproduction of test_sweep_reproduce, points (and the BP surrogates that the
    robustness points share, trained first) in two worker processes: the same claims and the
    same aggregates as one after another in this process."""
    from test_sweep_reproduce import TINY_PLAN

    from hwsim.experiments.reproduce import run_reproduce
    from hwsim.models.training import torch_threads

    with torch_threads(1):
        local = run_reproduce(TINY_PLAN, tmp_path / "local")
    with ProcessExecutor(workers=2, threads=1, retries=0) as executor:
        parallel = run_reproduce(TINY_PLAN, tmp_path / "processes", executor=executor)
    assert parallel["claims"] == local["claims"]
    for name, summary in local["sweeps"].items():
        other = parallel["sweeps"][name]
        assert {k: v for k, v in other.items() if k not in ("compute_s", "environment")} == {
            k: v for k, v in summary.items() if k not in ("compute_s", "environment")
        }, name
    assert parallel["timing"]["executor"] == "processes" and parallel["timing"]["workers"] == 2
    surrogates = tmp_path / "processes" / "sweeps" / "rules" / "surrogates"
    assert sorted(p.name for p in surrogates.iterdir()) == ["bp-seed1", "bp-seed2"]
