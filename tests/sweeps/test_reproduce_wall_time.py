"""``hwsim reproduce --help``, README and docs/reproduce.md state one wall time for the small
plan: the one measured (the saved run's ``timing.wall_s`` is its upper end)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hwsim.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_help_readme_and_docs_give_the_measured_wall_time():
    from hwsim.cli.reproduce import SMALL_WALL_MIN

    low, high = (float(x) for x in SMALL_WALL_MIN.split("–"))
    saved = json.loads((ROOT / "docs/results/reproduce-small.json").read_text())
    measured = saved["timing"]["wall_s"] / 60
    assert round(measured, 1) == high  # the saved run: 13.0 min
    docs = " ".join((ROOT / "docs/reproduce.md").read_text(encoding="utf-8").split())
    assert f"**{low:.1f} min**" in docs and f"took {high:.1f} min" in docs
    shown = " ".join(CliRunner().invoke(main, ["reproduce", "--help"]).output.split())
    assert f"small: mnist5k, {SMALL_WALL_MIN} min on a 2-core CPU" in shown
    assert "30 min" not in shown
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`small` takes {SMALL_WALL_MIN} min on a 2-core CPU" in readme
