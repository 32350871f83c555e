"""hwsim installs exactly one top-level import name, ``hwsim`` (issue 24).

Python puts the working directory first on ``sys.path``, in ``hwsim compare``'s worker processes
too, so a second top-level name would be shadowed by a folder of the user's own: most PyTorch
projects have a ``models/`` package. The learning side therefore installs as ``hwsim.models``
(source folder ``models/``) and the shipped configs as ``hwsim.configs`` (``configs/``).

Here, fast: pyproject.toml installs only ``hwsim`` packages; nothing in the tree names a
top-level ``models`` module; and the installed API and CLI (this environment's editable
install, ``PYTHONPATH`` unset: the user's situation) run from a folder that holds its own
``models/`` and ``configs/`` packages, ``hwsim compare`` with worker processes included. Slow:
the same from the wheel (conftest.py's ``wheel``, whose one top-level name
tests/test_packaging.py checks) installed in a fresh venv.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The user's own packages. ``models`` imports cleanly, as a real project's does: a process that
#: imported it once (``hwsim compare``'s fork server, whose ``sys.path`` starts with the working
#: directory) can then find no other ``models.…``; its ``training`` module and ``configs`` fail
#: loudly, and ``configs/chips/edge_sram.yaml`` is no chip.
USER_PACKAGES = {
    "models/__init__.py": 'OWNER = "the user"\n',
    "models/training.py": 'raise ImportError("the user\'s own models.training")\n',
    "configs/__init__.py": 'raise ImportError("the user\'s own configs package")\n',
    "configs/chips/edge_sram.yaml": "not: a chip\n",
}
#: A compare run that trains in seconds (two runs, so that the worker processes start).
TINY_EXPERIMENT = """\
version: 1
name: shadowed
dataset: {name: digits, train_size: 200}
network: {model: mlp, depth: 2, width: 16}
quantization: {weight_bits: 8, act_bits: 8, feedback_bits: 8}
training: {epochs: 1, batch_size: 100}
seeds: [0]
rules: [bp, fa]
chips: [edge_sram]
"""
#: The API from the user's folder: where each package came from, and what else got imported.
API_PROBE = """
import json, sys
import hwsim.models.training
from hwsim.core.resources import CONFIGS_DIR
from hwsim.models import TrainConfig, convert
from hwsim.sim.api import simulate

result = simulate("mlp:784-256-10", "edge_sram", "bp,fa")
assert result.rules["bp"].energy_pj > 0, result.rules["bp"]
assert TrainConfig(algo="fa").algo == "fa" and callable(convert)
print(json.dumps({
    "path0": sys.path[0],
    "models": hwsim.models.__file__,
    "training": hwsim.models.training.__file__,
    "configs": str(CONFIGS_DIR),
    "top_level": sorted(n for n in sys.modules if n.split(".")[0] in ("models", "configs")),
}))
"""
#: Source and documentation files whose text the static check reads.
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".cfg", ".txt"}
#: A top-level ``models`` or ``configs`` module named in code or prose: ``import models``,
#: ``from configs import …``, ``models.training.train`` (``hwsim.models.…``, ``args.models`` and
#: the path ``models/training.py`` are fine).
TOP_LEVEL_NAME = re.compile(
    r"(?<![\w.])(?:from|import)\s+(?:models|configs)\b(?![/-])|(?<![\w./-])models\.[A-Za-z_]"
)


def _source_files() -> list[Path]:
    """The tree's text files (no virtual environments, caches or build output)."""
    skip = {"build", "dist", "reports", "runs", "__pycache__"}
    return sorted(
        path
        for path in ROOT.rglob("*")
        if path.suffix in TEXT_SUFFIXES
        and path.is_file()
        and not any(
            part.startswith(".") or part in skip or part.endswith(".egg-info")
            for part in path.relative_to(ROOT).parts[:-1]
        )
    )


def _clean_env(home: Path) -> dict[str, str]:
    """This environment without ``PYTHONPATH`` and friends: what a user's shell has."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH")
    }
    env.update(PYTHONNOUSERSITE="1", HOME=str(home), NO_COLOR="1")
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300):
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {done.returncode} in {cwd}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """A folder like a PyTorch project's: its own ``models/`` and ``configs/`` packages."""
    project = tmp_path / "project"
    for name, text in USER_PACKAGES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text, encoding="utf-8")
    (project / "tiny.yaml").write_text(TINY_EXPERIMENT, encoding="utf-8")
    return project


def _hwsim_script() -> Path:
    script = Path(sys.executable).with_name("hwsim")
    if not script.is_file():
        pytest.skip(f"no hwsim script beside {sys.executable}")
    return script


def test_pyproject_installs_only_hwsim():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]
    packages = setuptools["packages"]
    assert {p.split(".")[0] for p in packages} == {"hwsim"}, packages
    assert {"hwsim.models", "hwsim.models.analysis", "hwsim.configs"} <= set(packages)
    assert setuptools["package-dir"] == {"hwsim.models": "models", "hwsim.configs": "configs"}
    for name, folder in setuptools["package-dir"].items():
        assert (ROOT / folder / "__init__.py").is_file(), f"{name}: no {folder}/__init__.py"


def test_the_static_check_sees_top_level_names():
    found = [
        bool(TOP_LEVEL_NAME.search(text))
        for text in (
            "import models",
            "    from models.training import train",
            "from configs import chips",
            'code = "import models.fastquant as f"',
            "(:func:`models.convert.layer_names`)",
            "from hwsim.models import convert",
            "import hwsim.models.training",
            "hwsim.models.training.train",
            "args.models.split(',')",
            "see models/training.py",
            "trained models. The rest",
        )
    ]
    assert found == [True] * 5 + [False] * 6


def test_nothing_names_a_top_level_models_module():
    """No import of ``models`` or ``configs``, and no module path ``models.…`` (a pickled
    function, ``importlib.import_module``, a ``--model package.module:factory``, a doc's
    example): each would break, or import the user's package, from a folder with its own."""
    files = _source_files()
    assert ROOT / "models" / "training.py" in files and ROOT / "README.md" in files
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if TOP_LEVEL_NAME.search(line)
    ]
    assert found == []


def _editable() -> bool:
    """Whether this environment's hwsim is an editable install of this tree (README's set-up;
    the tree's own ``hwsim.egg-info``, found first from the repository root, records no URL)."""
    for dist in importlib.metadata.distributions(name="hwsim"):
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        if direct.get("dir_info", {}).get("editable") and direct.get("url") == ROOT.as_uri():
            return True
    return False


def test_editable_install_maps_hwsim_models_to_the_source_folder(tmp_path: Path):
    """``import hwsim.models`` is this tree's ``models/`` from any directory."""
    if not _editable():
        pytest.skip("hwsim is not installed editable here")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "import hwsim.models, hwsim.configs; print(hwsim.models.__file__)"
    done = _run([sys.executable, "-c", code], elsewhere, _clean_env(tmp_path / "home"))
    assert Path(done.stdout.strip()) == ROOT / "models" / "__init__.py"


def _check_api(python: Path, project: Path, env: dict[str, str], models: Path) -> None:
    """The API from ``project``: ``hwsim.models`` is the installed one, in ``models``."""
    # the trap is real: in this folder, ``import models`` is the user's package
    shadowed = _run([str(python), "-c", "import models; print(models.OWNER)"], project, env)
    assert shadowed.stdout.strip() == "the user"

    found = json.loads(_run([str(python), "-c", API_PROBE], project, env).stdout)
    assert found["path0"] == "", found  # the working directory comes first
    assert Path(found["models"]) == models / "__init__.py", found
    assert Path(found["training"]) == models / "training.py", found
    assert Path(found["configs"]).parent == models.parent, found  # hwsim.configs beside it
    assert found["top_level"] == [], found


def _check_simulate(hwsim: Path, project: Path, env: dict[str, str]) -> None:
    simulated = _run(
        [str(hwsim), "simulate", "--model", "mlp:784-256-10", "--algo", "bp,fa", "--json"],
        project,
        env,
    )
    assert list(json.loads(simulated.stdout)["rules"]) == ["bp", "fa"]
    listed = _run([str(hwsim), "chip", "list"], project, env)
    assert "edge_sram" in listed.stdout


def _check_compare(hwsim: Path, project: Path, env: dict[str, str]) -> None:
    """``hwsim compare`` with two worker processes. Their fork server starts with the working
    directory first on ``sys.path`` (Python 3.11 ignores the parent's path there) and imports
    the training module by name: with a top-level ``models`` that was the user's package, and
    every run failed with ``BrokenProcessPool … No module named 'models.training'``."""
    out = project / "out"
    compare = ["compare", "--experiment", "tiny.yaml", "--out", "out", "--workers", "2"]
    summary = json.loads(_run([str(hwsim), *compare, "--quiet", "--json"], project, env).stdout)
    assert summary["format"] == "hwsim-compare"
    recorded = json.loads((out / "environment.json").read_text(encoding="utf-8"))
    assert recorded["workers"] == 2, recorded  # the runs trained in worker processes
    assert sorted(p.name.split("-")[0] for p in (out / "runs").iterdir()) == ["bp", "fa"]


def _installed_models() -> Path:
    """Where this environment's ``hwsim.models`` lives (``models/`` of this tree when editable)."""
    spec = importlib.util.find_spec("hwsim.models")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


def test_api_runs_from_a_folder_with_its_own_models(user_project: Path, tmp_path: Path):
    env = _clean_env(tmp_path / "home")
    _check_api(Path(sys.executable), user_project, env, _installed_models())


def test_cli_simulates_from_a_folder_with_its_own_models(user_project: Path, tmp_path: Path):
    _check_simulate(_hwsim_script(), user_project, _clean_env(tmp_path / "home"))


def test_cli_compares_from_a_folder_with_its_own_models(user_project: Path, tmp_path: Path):
    _check_compare(_hwsim_script(), user_project, _clean_env(tmp_path / "home"))


def _wheel_venv(tmp: Path, wheel: Path) -> tuple[Path, Path]:
    """A fresh venv with the wheel installed (no dependencies) and, through a .pth file, this
    interpreter's site-packages for the dependencies (its .pth files, the editable hwsim's
    among them, are not run from there). Returns the venv and its own site-packages."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, dict(os.environ))
    python = venv / "bin" / "python"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    pip_env.pop("VIRTUAL_ENV", None)
    install = ["--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    _run([sys.executable, "-m", "pip", *install], tmp, pip_env)
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site_dir = Path(_run([str(python), "-c", code], tmp, dict(os.environ)).stdout.strip())
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site_dir / "_hwsim_test_deps.pth").write_text("".join(f"{p}\n" for p in ours), "utf-8")
    return venv, site_dir


@pytest.mark.slow
def test_installed_wheel_runs_from_a_folder_with_its_own_models(
    wheel: Path, user_project: Path, tmp_path: Path
):
    """The wheel (one top-level name, tests/test_packaging.py) installed in a fresh venv: the
    API, ``hwsim simulate`` and ``hwsim compare`` with workers, from the user's folder."""
    venv, site_dir = _wheel_venv(tmp_path, wheel)
    env = _clean_env(tmp_path / "home")
    env.pop("VIRTUAL_ENV", None)
    _check_api(venv / "bin" / "python", user_project, env, site_dir / "hwsim" / "models")
    _check_simulate(venv / "bin" / "hwsim", user_project, env)
    _check_compare(venv / "bin" / "hwsim", user_project, env)
