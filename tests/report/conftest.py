"""A real, tiny compare run directory shared by the report tests (built once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXPERIMENT = """\
version: 1
name: report-test
description: tiny run for the report tests
dataset: {name: digits, train_size: 200}
network: {model: mlp, depth: 2, width: 16}
quantization: {weight_bits: 8, act_bits: 8}
training: {epochs: 2, batch_size: 100, lr: 0.01}
seeds: [0, 1]
rules: [bp, fa, ifa]
chips: [edge_sram, dfa_prng]
"""


@pytest.fixture(scope="session")
def compare_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory written by the real ``run_compare`` (training, simulation) and
    ``write_report``, as ``hwsim compare`` does."""
    from hwsim.experiments.compare import run_compare
    from hwsim.experiments.experiment import load_experiment
    from hwsim.render.report import write_report

    base = tmp_path_factory.mktemp("compare")
    experiment_file = base / "experiment-in.yaml"
    experiment_file.write_text(EXPERIMENT)
    out = base / "run"
    run_compare(load_experiment(experiment_file), out)
    write_report(out)
    return out


@pytest.fixture
def run_copy(compare_run: Path, tmp_path: Path) -> Path:
    """A private copy of the shared run directory, for tests that change or break it."""
    target = tmp_path / "run"
    shutil.copytree(compare_run, target, ignore=shutil.ignore_patterns("checkpoint.pt"))
    return target
