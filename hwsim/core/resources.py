"""Files that ship inside the package, and where output goes by default.

Shipped chips and experiments live in ``configs/`` of the source tree and are installed as the
package data ``hwsim.configs``, so a wheel finds them from any directory. Default output goes
under the current directory, never into the installed package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: The shipped configuration files (``chips/``, ``experiments/``).
CONFIGS_DIR = Path(str(files("hwsim.configs")))
#: Shipped chip YAML files, one per chip name.
CHIPS_DIR = CONFIGS_DIR / "chips"
#: Shipped experiment YAML files.
EXPERIMENTS_DIR = CONFIGS_DIR / "experiments"
#: The chip used when none is named.
DEFAULT_CHIP = CHIPS_DIR / "edge_sram.yaml"
#: The chip of an experiment that names none (the default experiment names it too): the IFA
#: paper's Fig. 1c scenario, where BP synchronizes its copy of W through DRAM.
DEFAULT_COMPARE_CHIP = CHIPS_DIR / "split_cores.yaml"
#: The experiment ``hwsim compare`` runs when none is named.
DEFAULT_EXPERIMENT = EXPERIMENTS_DIR / "default.yaml"


def shipped_chip_names() -> list[str]:
    """Names of the shipped chips (``edge_sram``, ...), sorted."""
    return sorted(p.stem for p in CHIPS_DIR.glob("*.yaml"))


def shipped_experiment_names() -> list[str]:
    """Names of the shipped experiments (``default``, ``online``, ``rules``), sorted."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def shipped_chip_name(path: Path) -> str | None:
    """The name of the shipped chip that ``path`` is (``…/configs/chips/edge_sram.yaml`` →
    ``edge_sram``), or None for any other file."""
    try:
        same = path.resolve().parent == CHIPS_DIR.resolve()
    except OSError:
        return None
    return path.stem if same and path.suffix == ".yaml" else None


def default_output(name: str) -> Path:
    """The default output directory ``reports/<name>`` under the current directory."""
    return Path.cwd() / "reports" / name
