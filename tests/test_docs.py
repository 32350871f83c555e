"""README's and docs' measured tables are drawn from the saved runs in docs/results/ (the
code blocks are run by tests/test_doc_blocks.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _tables_module():
    """``docs/results/tables.py``, the script that draws README's measured tables."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "docs/results/tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_the_saved_runs():
    """Every measured table in README and docs equals what its saved run in docs/results/
    draws: a number cannot be edited by hand, nor a run saved without redrawing."""
    tables = _tables_module()
    diffs = tables.stale()
    assert not diffs, "redraw with `python docs/results/tables.py --write`:\n" + "".join(
        diffs.values()
    )
    blocks = [
        m["name"]
        for doc in tables.DOCUMENTS
        for m in tables.MARKER.finditer((ROOT / doc).read_text())
    ]
    assert {"compare-default", "compare-rules", "reproduce-small"} <= set(blocks)
    for name in blocks:  # every block names a run that is saved (and says how it was measured)
        drawn = tables.TABLES[name](tables.load(name))
        assert "|---" in drawn


def test_a_hand_edited_number_is_caught(tmp_path: Path):
    tables = _tables_module()
    text = (ROOT / "README.md").read_text()
    match = re.search(r"\| bp \| (0\.\d{3})", text)
    assert match, "README's default table lost its bp row"
    edited = text.replace(match.group(0), "| bp | 0.999", 1)
    assert tables.redraw(edited) == tables.redraw(text) != edited
    summary = tables.load("compare-default")
    drawn = tables.compare_default(summary)
    assert "seeds 0, 1, 2" in drawn and summary["environment"]["torch"] in drawn
