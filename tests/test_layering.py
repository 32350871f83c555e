"""The layers of docs/architecture.md, enforced two ways.

- Statically: every ``import`` in every module (those inside functions too) goes only to a layer
  below it, and heavy third-party packages stay out of the layers that promise to be without them.
  Nothing imports a top-level ``models``: the learning side is ``hwsim.models`` (its source is
  ``models/``, mapped by pyproject.toml's ``[tool.setuptools.package-dir]``).
- At run time: each layer is imported in a fresh interpreter, and the packages that got loaded
  are checked (a lazy import in a function is allowed; one at import time is not).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: package → its folder in the source tree, where that is not the package's own path
#: (``hwsim.models`` is ``models/``, ``hwsim.configs`` is ``configs/``).
PACKAGE_DIRS = {
    name: ROOT / folder for name, folder in _PYPROJECT["tool"]["setuptools"]["package-dir"].items()
}
#: Folders at the top of the source tree that are no importable package of their own.
NOT_IMPORTABLE = {"models", "configs"}

#: layer → the layers it may import (itself included).
ALLOWED = {
    "hwsim.core": {"hwsim.core"},
    "hwsim.sim": {"hwsim.core", "hwsim.sim"},
    "hwsim.models": {"hwsim.core", "hwsim.models"},
    "hwsim.experiments": {"hwsim.core", "hwsim.sim", "hwsim.models", "hwsim.experiments"},
    "hwsim.render": {"hwsim.core", "hwsim.sim", "hwsim.render"},
    "hwsim.cli": {
        "hwsim.core",
        "hwsim.sim",
        "hwsim.models",
        "hwsim.experiments",
        "hwsim.render",
        "hwsim.cli",
    },
}
#: layer → third-party packages it must never import, not even lazily.
FORBIDDEN_PACKAGES = {
    "hwsim.core": {"torch", "brevitas", "simpy", "matplotlib", "sklearn", "mlxtend"},
    "hwsim.sim": {"torch", "brevitas", "matplotlib", "sklearn", "mlxtend"},
    "hwsim.models": {"simpy", "matplotlib", "click", "rich"},
    "hwsim.experiments": {"matplotlib", "click", "rich"},
    "hwsim.render": {"torch", "brevitas", "sklearn", "mlxtend"},
    "hwsim.cli": set(),
}
#: layer → packages that importing it (at import time, in a fresh interpreter) must not load.
NOT_LOADED = {
    "hwsim.core": {"torch", "brevitas", "simpy", "matplotlib", "hwsim.models", "hwsim.sim"}
    | {"hwsim.experiments", "hwsim.render", "hwsim.cli"},
    "hwsim.sim": {"torch", "brevitas", "matplotlib", "hwsim.models"}
    | {"hwsim.experiments", "hwsim.render", "hwsim.cli"},
    "hwsim.models": {"simpy", "matplotlib", "hwsim.sim", "hwsim.experiments", "hwsim.render"}
    | {"hwsim.cli"},
    "hwsim.experiments": {"matplotlib", "hwsim.render", "hwsim.cli"},
    "hwsim.render": {"torch", "brevitas", "hwsim.models", "hwsim.experiments", "hwsim.cli"},
    # The command line starts light: torch and friends load inside the commands that need them.
    "hwsim.cli": {"torch", "brevitas", "matplotlib", "hwsim.models", "hwsim.experiments"},
}


def _layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _source(module: str) -> Path:
    """Where ``module`` lives in the source tree, without ``.py`` (``hwsim.models.training`` →
    ``models/training``)."""
    for name, folder in PACKAGE_DIRS.items():
        if module == name or module.startswith(name + "."):
            return folder.joinpath(*module.split(".")[len(name.split(".")) :])
    return ROOT.joinpath(*module.split("."))


def _module_name(path: Path) -> str:
    """The import name of the source file ``path`` (``models/training.py`` →
    ``hwsim.models.training``)."""
    for name, folder in PACKAGE_DIRS.items():
        if path.is_relative_to(folder):
            parts = (*name.split("."), *path.relative_to(folder).with_suffix("").parts)
            break
    else:
        parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(layer: str) -> list[str]:
    return [_module_name(path) for path in sorted(_source(layer).rglob("*.py"))]


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names), with its line."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the package
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from hwsim import sim`` imports the subpackage hwsim.sim
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def test_every_module_belongs_to_a_layer():
    stray = [
        str(p.relative_to(ROOT))
        for top in ("hwsim", "models")
        for p in (ROOT / top).rglob("*.py")
        if _layer_of(_module_name(p)) is None and p.relative_to(ROOT) != Path("hwsim/__init__.py")
    ]
    assert stray == []


def test_module_names_follow_the_package_dirs():
    """The source folder ``models/`` is the package ``hwsim.models``, as the wheel installs it."""
    assert PACKAGE_DIRS["hwsim.models"] == ROOT / "models"
    assert _module_name(ROOT / "models" / "__init__.py") == "hwsim.models"
    hessian = ROOT / "models" / "analysis" / "hessian.py"
    assert _module_name(hessian) == "hwsim.models.analysis.hessian"
    assert _source("hwsim.models.analysis.hessian").with_suffix(".py") == hessian
    assert _module_name(ROOT / "hwsim" / "sim" / "api.py") == "hwsim.sim.api"
    assert "hwsim.models.training" in _modules("hwsim.models")


@pytest.mark.parametrize("layer", list(ALLOWED))
def test_imports_go_only_to_lower_layers(layer: str):
    violations = []
    for module in _modules(layer):
        path = _source(module)
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for line, name in _imports(path, module):
            target = _layer_of(name)
            top = name.split(".")[0]
            if top in NOT_IMPORTABLE:  # a source folder, which the user's own ``models`` shadows
                violations.append(f"{path.relative_to(ROOT)}:{line}: imports {name} (a folder)")
            if target is not None and target not in ALLOWED[layer]:
                violations.append(f"{path.relative_to(ROOT)}:{line}: imports {name} ({target})")
            if top in FORBIDDEN_PACKAGES[layer]:
                violations.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    assert violations == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path):
    """The static check must not miss an import hidden in a function or written relatively."""
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    import torch\n    from ..sim import api\n")
    found = _imports(source, "hwsim.core.mod")
    assert (2, "torch") in found
    assert (3, "hwsim.sim") in found and (3, "hwsim.sim.api") in found


_PROBE = """
import importlib, json, sys
loaded = {}
for name in sys.argv[1:]:
    before = set(sys.modules)
    importlib.import_module(name)
    loaded[name] = sorted(set(sys.modules) - before)
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("layer", list(NOT_LOADED))
def test_importing_a_layer_loads_nothing_above_it(layer: str):
    modules = _modules(layer)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    loaded = json.loads(done.stdout)
    problems = [
        f"import {module} loads {name}"
        for module, names in loaded.items()
        for name in names
        for banned in NOT_LOADED[layer]
        if name == banned or name.startswith(banned + ".")
    ]
    assert problems == []


_LIGHT = """
import sys
from hwsim.experiments.experiment import load_experiment
from hwsim.models.config import TrainConfig

experiment = load_experiment()  # validated, training settings and all
config = experiment.train_config("ifa", 0)
assert isinstance(config, TrainConfig) and config.epochs == 5, config
heavy = sorted(n for n in ("torch", "brevitas") if n in sys.modules)
import hwsim.models.convert  # binds the submodule on the package; the function must stay
from hwsim.models import convert
print(heavy, callable(convert) and not isinstance(convert, type(sys)))
print(sorted(n for n in sys.modules if n.split(".")[0] in ("models", "configs")))
"""


def test_experiments_and_configs_are_validated_without_torch():
    """Loading an experiment and building its training configs (what re-pricing a compare run
    does) import no torch; ``hwsim.models``' names load lazily and keep their meaning. It runs
    in the repository root, where the folder ``models/`` is on ``sys.path``: nothing imports it
    as a top-level ``models``."""
    done = subprocess.run(
        [sys.executable, "-c", _LIGHT], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.split() == ["[]", "True", "[]"], done.stdout + done.stderr
