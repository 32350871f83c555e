"""Benchmark the chip designer's loop: train once, then edit the chip and rerun the same command.

Run: ``python benchmarks/bench_reprice.py [--edits N] [--out DIR]``. Times, each as a fresh
``hwsim compare`` process (what a user waits for, imports included) on the default experiment
with a copy of its chip, ``mine.yaml``:

1. the first call, which trains every run (what every edit cost before runs were reused);
2. ``--edits`` calls after changing one energy of ``mine.yaml`` each time (the loop);
3. the same command with nothing changed (everything priced from the cache).

Prints each time, the medians and the ratio. Not a timed test: the numbers depend on the
machine and its load (run it on an idle machine; ``uptime`` is printed beside).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hwsim.core.resources import CHIPS_DIR, DEFAULT_COMPARE_CHIP


def _compare(chip: Path, out: Path) -> float:
    command = [sys.executable, "-c", "from hwsim.cli import main; main()"]
    start = time.perf_counter()
    subprocess.run(
        [*command, "compare", "--chip", str(chip), "--out", str(out), "--quiet"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    """Print the loop's times."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=5, help="chip edits to time [5]")
    parser.add_argument("--out", default=None, help="work directory [a temporary one]")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-reprice-"))
    work.mkdir(parents=True, exist_ok=True)
    chip = work / "mine.yaml"
    document = yaml.safe_load((CHIPS_DIR / DEFAULT_COMPARE_CHIP.name).read_text())
    document["name"] = "mine"
    chip.write_text(yaml.safe_dump(document, sort_keys=False))
    out = work / "compare"
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} cores; work dir {work}")

    first = _compare(chip, out)
    print(f"first call (trains every run):           {first:7.2f} s")
    memory = next(iter(document["memories"]))
    edits = []
    for i in range(args.edits):
        document["memories"][memory]["read_energy_pj"] = float(
            document["memories"][memory]["read_energy_pj"]
        ) * (1.5 if i % 2 == 0 else 1 / 1.5)
        chip.write_text(yaml.safe_dump(document, sort_keys=False))
        edits.append(_compare(chip, out))
        print(f"after edit {i + 1} (memories.{memory}.read_energy_pj): {edits[-1]:7.2f} s")
    unchanged = [_compare(chip, out) for _ in range(3)]
    print(f"nothing changed, median of 3:            {statistics.median(unchanged):7.2f} s")
    median = statistics.median(edits)
    print(
        f"edit-a-chip loop: median {median:.2f} s over {len(edits)} edits, against "
        f"{first:.2f} s for a call that trains ({first / median:.1f}x faster)"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
