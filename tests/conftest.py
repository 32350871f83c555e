"""Settings every test shares, and the wheel (built once per session)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel's source needs: pyproject.toml's readme and licence, and the package dirs.
SOURCE_ENTRIES = ("pyproject.toml", "README.md", "LICENSE", "hwsim", "models", "configs")

# `hwsim compare` trains its runs in one worker process per core by default; a tiny test run
# would spend most of its time starting those processes. Tests train in-process unless they
# ask for workers (tests/learning/test_devices_and_environment.py does, and checks that the
# numbers do not change).
os.environ.setdefault("HWSIM_WORKERS", "1")
# Training writes TensorBoard events whenever the tensorboard package is installed; the tests
# run alike with and without it (tests/learning/test_run_logs.py turns it on where it checks it).
os.environ.setdefault("HWSIM_TENSORBOARD", "0")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline (``pip wheel --no-build-isolation``) from a copy of the source
    tree (a build in place would leave build/ and could pack stale files from an old build/lib).
    tests/test_packaging.py checks what it holds; tests/test_namespace.py runs it from a folder
    with its own ``models/``."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.tmp")
    for entry in SOURCE_ENTRIES:
        path = ROOT / entry
        if path.is_dir():
            shutil.copytree(path, src / entry, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(path, src / entry)
    dist = tmp / "dist"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    build = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(src)]
    done = subprocess.run(
        [sys.executable, "-m", "pip", *build],
        cwd=tmp,
        env=pip_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (
        f"pip wheel failed\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    wheels = list(dist.glob("hwsim-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture
def recorded_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap the one thread helper every command uses (``torch_threads``); the list gets
    torch's thread count inside each block it runs."""
    from contextlib import contextmanager

    import torch

    import hwsim.models.training as training

    seen: list[int] = []
    original = training.torch_threads

    @contextmanager
    def recording(threads):
        with original(threads):
            seen.append(torch.get_num_threads())
            yield

    monkeypatch.setattr(training, "torch_threads", recording)
    return seen
