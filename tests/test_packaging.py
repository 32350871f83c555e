"""The wheel: built from this tree, complete, and enough to run the simulator without torch.

Builds the wheel offline (``pip wheel --no-build-isolation``: the ``wheel`` fixture of
conftest.py) from a copy of the source tree, checks what it holds (every package, every shipped
config, the licence, one top-level import name), installs it into a fresh venv that gets only the
simulator's dependencies (simpy, numpy and scipy for the mapper, PyYAML, click, rich and what rich
needs; no torch, brevitas or matplotlib), and runs the installed ``hwsim`` from an empty
directory. A CLI module that imports torch or matplotlib at import time makes this fail, with
the traceback naming it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The distributions ``hwsim simulate`` / ``hwsim chip`` need, with their own dependencies.
SIM_DISTRIBUTIONS = (
    *("simpy", "numpy", "scipy", "PyYAML", "click", "rich", "markdown-it-py", "mdurl"),
    "Pygments",
)
#: Source folder → where the wheel puts it: ``models/`` installs as ``hwsim.models``
#: (pyproject.toml's ``[tool.setuptools.package-dir]``), so that the one import name is ``hwsim``.
INSTALLED_AS = {"hwsim": "hwsim", "models": "hwsim/models"}
#: The learning side, which the simulator must not need.
NOT_NEEDED = ("torch", "brevitas", "matplotlib", "sklearn")


def _check(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 120):
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file and link under ``directory``: (size, mtime in ns)."""
    out = {}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(directory))] = (st.st_size, st.st_mtime_ns)
    return out


def test_wheel_holds_every_package_config_and_the_licence(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        assert len(dist_info) == 1, dist_info
        (info,) = dist_info
        metadata = zf.read(f"{info}/METADATA").decode()
        top_level = zf.read(f"{info}/top_level.txt").decode().split()
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    # every package directory of the tree is in the wheel, where it installs (models/ as
    # hwsim/models/): the explicit packages list is complete
    packages = sorted(
        "/".join((INSTALLED_AS[top], *p.parent.relative_to(ROOT / top).parts))
        for top in INSTALLED_AS
        for p in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in p.parts
    )
    assert "hwsim/sim" in packages and "hwsim/models/analysis" in packages
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert not missing, f"packages missing from [tool.setuptools] packages: {missing}"
    for top, installed in INSTALLED_AS.items():
        for module in (ROOT / top).rglob("*.py"):
            if "__pycache__" not in module.parts:
                path = "/".join((installed, *module.relative_to(ROOT / top).parts))
                assert path in names, f"{module.relative_to(ROOT)} is not in the wheel as {path}"
    # every shipped config, as package data hwsim.configs
    configs = sorted(p.relative_to(ROOT / "configs").as_posix() for p in ROOT.glob("configs/**/*"))
    assert "chips/edge_sram.yaml" in configs
    for rel in configs:
        if rel.endswith((".yaml", ".py")):
            assert f"hwsim/configs/{rel}" in names, f"configs/{rel} is not in the wheel"
    # the licence, and the metadata that names it
    assert f"{info}/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata
    assert "Requires-Python: >=3.11" in metadata
    # nothing else at the top level (no tests/, no stray packages): one import name, hwsim (a
    # second one, such as models, is shadowed by the user's own; tests/test_namespace.py)
    assert {n.split("/")[0] for n in names} == {"hwsim", info}
    assert top_level == ["hwsim"]
    assert "hwsim = hwsim.cli:main" in entry_points.splitlines()


def _simulator_only_venv(tmp: Path, wheel: Path) -> tuple[Path, Path]:
    """A fresh venv with the wheel installed and, through a .pth file, links to the simulator's
    dependencies from this interpreter's site-packages, and nothing else."""
    venv = tmp / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    pip_env.pop("VIRTUAL_ENV", None)
    install = ["--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    _check(
        [sys.executable, "-m", "pip", *install],
        cwd=tmp,
        env=pip_env,
        timeout=300,
    )
    site = Path(
        _check(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp
        ).stdout.strip()
    )
    deps = tmp / "deps"
    deps.mkdir()
    for name in SIM_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        tops = {Path(f).parts[0] for f in dist.files or ()}
        tops -= {"..", "__pycache__"}
        assert tops, f"{name}: no files recorded"
        for top in sorted(tops):
            target = Path(str(dist.locate_file(top)))
            assert target.exists(), target
            link = deps / top
            if not link.exists():
                link.symlink_to(target, target_is_directory=target.is_dir())
    (site / "_hwsim_test_simulator_deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    return venv, site


def test_installed_wheel_runs_the_simulator_without_torch(wheel, tmp_path):
    venv, site = _simulator_only_venv(tmp_path, wheel)
    python, hwsim = venv / "bin" / "python", venv / "bin" / "hwsim"
    assert hwsim.is_file()
    work = tmp_path / "empty"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    env.update(PYTHONNOUSERSITE="1", HOME=str(tmp_path / "home"), NO_COLOR="1")
    # the learning side is absent: the simulator provably runs without it
    probe = "import importlib.util as u, json; print(json.dumps([m for m in %r if u.find_spec(m)]))"
    found = json.loads(_check([str(python), "-c", probe % (NOT_NEEDED,)], cwd=work, env=env).stdout)
    assert found == [], f"the test venv can import {found}"
    # the installed package is the wheel, not this source tree
    where = _check(
        [str(python), "-c", "import hwsim, hwsim.configs; print(hwsim.__file__)"], cwd=work, env=env
    ).stdout.strip()
    assert Path(where).is_relative_to(site), where
    before = _snapshot(site)

    result = _check(
        [str(hwsim), "simulate", "--model", "mlp:784-256-10", "--algo", "bp,fa,ifa", "--json"],
        cwd=work,
        env=env,
    )
    doc = json.loads(result.stdout)
    assert doc["format"] == "hwsim-simulation" and doc["chip"]["name"] == "edge_sram"
    assert list(doc["rules"]) == ["bp", "fa", "ifa"]
    for rule in doc["rules"].values():
        assert rule["energy_pj"]["total"] > 0 and rule["latency_cycles"] > 0

    shown = _check([str(hwsim), "chip", "show", "edge_sram"], cwd=work, env=env)
    assert "edge_sram" in shown.stdout and "weight_sram" in shown.stdout
    listed = _check([str(hwsim), "chip", "list"], cwd=work, env=env)
    assert "edge_sram" in listed.stdout
    _check([str(hwsim), "chip", "init", "mine"], cwd=work, env=env)
    assert sorted(p.name for p in work.iterdir()) == ["mine.yaml"]
    assert "name: mine\n" in (work / "mine.yaml").read_text(encoding="utf-8")
    validated = _check([str(hwsim), "chip", "validate", "mine.yaml"], cwd=work, env=env)
    assert "ok mine.yaml" in validated.stdout

    assert sorted(p.name for p in work.iterdir()) == ["mine.yaml"]  # no reports/ or other output
    after = _snapshot(site)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"running hwsim wrote into the installed package: {changed}"
