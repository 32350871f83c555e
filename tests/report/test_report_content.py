"""The report's files and numbers, checked against the run directory they were made from."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from hwsim.core.units import format_si, format_sig, si_prefix
from hwsim.render.report import write_report

PREFIX_SCALE = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3, "µ": 1e-6, "n": 1e-9, "p": 1e-12}


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, checking the signature and every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, types = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        types.append(kind)
        pos += 12 + length
    return types


def summary_table(markdown: str) -> tuple[list[str], list[list[str]]]:
    section = markdown.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    cells = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return cells[0], cells[2:]


def parse_number(cell: str) -> tuple[float, float]:
    """A formatted number and half a unit of its last digit."""
    text = cell.replace(",", "")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return float(text), 0.5 * 10.0**-decimals


def test_every_file_is_written_and_linked(compare_run: Path) -> None:
    written = write_report(compare_run)
    names = {p.relative_to(compare_run).as_posix() for p in written}
    assert {"report.md", "report.html"} <= names
    figures = sorted(n for n in names if n.startswith("figures/"))
    assert figures == sorted(
        p.relative_to(compare_run).as_posix() for p in (compare_run / "figures").glob("*.png")
    )
    # 3 run-wide figures (learning curves, alignment, the chips side by side) + energy, energy
    # per layer, BP's gap waterfall, accesses and timeline for each of the 2 chips
    assert len(figures) == 3 + 5 * 2
    markdown = (compare_run / "report.md").read_text()
    assert sorted(re.findall(r"\]\((figures/[^)]+\.png)\)", markdown)) == figures
    assert not list(compare_run.rglob("*.tmp"))


def test_every_figure_is_a_valid_png(compare_run: Path) -> None:
    for path in (compare_run / "figures").glob("*.png"):
        chunks = png_chunks(path.read_bytes())
        assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
        assert b"tIME" not in chunks  # no timestamp: regenerated files stay identical


def test_html_is_self_contained(compare_run: Path) -> None:
    page = (compare_run / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    figures = {p.read_bytes() for p in (compare_run / "figures").glob("*.png")}
    assert len(embedded) == len(figures)
    assert {base64.b64decode(e) for e in embedded} == figures


def test_summary_table_matches_summary_json(compare_run: Path) -> None:
    summary = json.loads((compare_run / "summary.json").read_text())
    headers, rows = summary_table((compare_run / "report.md").read_text())
    assert len(rows) == len(summary["chip_order"]) * len(summary["rule_order"])

    def unit_scale(header: str, unit: str) -> float:
        prefix = re.search(rf"\(([^()]*){unit}\)$", header).group(1)
        return PREFIX_SCALE[prefix]

    checked = 0
    for row in rows:
        cell = dict(zip(headers, row, strict=True))
        block = summary["chips"][cell["chip"]]["rules"][cell["rule"]]
        assert cell["status"] == block["status"]
        mean, *spread = cell["final test accuracy (%, mean ± std)"].split(" ± ")
        pairs = [
            (mean, block["test_accuracy"]["final"]),
            (cell["best test accuracy (%)"], block["test_accuracy"]["best"]),
        ]
        # a spread is shown exactly when the summary has one (sample std: none for one seed)
        assert bool(spread) == (block["test_accuracy"]["final_std"] is not None)
        pairs += [(s, block["test_accuracy"]["final_std"]) for s in spread]
        for text, truth in pairs:
            value, tol = parse_number(text)
            assert abs(value - 100 * truth) <= tol + 1e-9
        for header, key in (
            ("weight transport / step (bits)", "weight_transport_bits"),
            ("sync writes / step (bits)", "sync_write_bits"),
            ("feedback reads / step (bits)", "feedback_read_bits"),
        ):
            assert int(cell[header].replace(",", "")) == block[key]
        scaled = {
            "energy / step": (block["energy_pj"]["total"] * 1e-12, "J"),
            "energy / run": (block["run_totals"]["energy_pj"]["total"] * 1e-12, "J"),
            "latency / step": (block["latency_s"], "s"),
        }
        for name, (truth, unit) in scaled.items():
            header = next(h for h in headers if h.startswith(name + " ("))
            scale = unit_scale(header, unit)
            value, tol = parse_number(cell[header])
            assert abs(value - truth / scale) <= tol * (1 + 1e-9)
            assert abs(value * scale - truth) <= 1e-3 * abs(truth)  # 4 significant digits
        for header, key in (
            ("energy / step ÷ BP (×)", "energy_per_step"),
            ("energy / run ÷ BP (×)", "energy_run"),
            ("latency ÷ BP (×)", "latency_per_step"),
            ("accuracy ÷ BP (×)", "final_test_accuracy"),
        ):
            value, tol = parse_number(cell[header])
            assert abs(value - block["ratios_to_bp"][key]) <= tol + 1e-12
        checked += 1
    assert checked == len(rows)
    bp = summary["chips"]["edge_sram"]["rules"]["bp"]
    assert bp["weight_transport_bits"] > 0  # the table above did compare a non-trivial number


def test_findings_and_inputs_come_from_the_run(compare_run: Path) -> None:
    summary = json.loads((compare_run / "summary.json").read_text())
    markdown = (compare_run / "report.md").read_text()
    findings = markdown.split("## Findings\n", 1)[1].split("\n## ", 1)[0]
    for chip in summary["chip_order"]:
        rules = summary["chips"][chip]["rules"]
        transport = ", ".join(
            f"{r} {format_si(rules[r]['weight_transport_bits'], 'bit')}"
            for r in summary["rule_order"]
        )
        assert (
            f"Chip {chip}, per training step: weight transport over the interconnect: "
            f"{transport};" in findings
        )
    acc = summary["chips"]["edge_sram"]["rules"]
    delta = 100 * (acc["ifa"]["test_accuracy"]["final"] - acc["bp"]["test_accuracy"]["final"])
    assert (
        f"ifa {100 * acc['ifa']['test_accuracy']['final']:.2f} % (Δ {delta:+.2f} pp vs bp)"
        in findings
    )
    header = markdown.split("## ", 1)[0]
    data = summary["data"]
    assert (
        f"Dataset: {data['dataset']}, {data['train_samples']:,} training and "
        f"{data['test_samples']:,} test samples" in header
    )
    assert "seeds: 0, 1" in header and "Epochs: 2" in header and "weights 8 bit" in header
    assert (compare_run / "experiment.yaml").read_text().rstrip() in markdown
    first, *others = summary["chip_order"]
    first_text = (compare_run / "chips" / f"{first}.yaml").read_text()
    assert first_text.rstrip() in markdown  # the first chip in full
    for chip in others:  # every other chip as a unified diff against it, which rebuilds it
        diff = markdown.split(f"as a diff against {first}\n\n```diff\n", 1)[1].split("\n```", 1)[0]
        assert (
            apply_unified_diff(first_text, diff)
            == (compare_run / "chips" / f"{chip}.yaml").read_text()
        )


def apply_unified_diff(text: str, diff: str) -> str:
    """``text`` with a unified diff applied (hunks in order; context lines checked)."""
    old = text.splitlines(keepends=True)
    out: list[str] = []
    at = 0
    lines = diff.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", line)
        i += 1
        if not match:
            continue
        start = int(match.group(1)) - (0 if match.group(2) == "0" else 1)
        out += old[at:start]
        at = start
        while i < len(lines) and lines[i][:1] in (" ", "-", "+"):
            body = lines[i][1:] + "\n"
            if lines[i][0] in " -":
                assert old[at] == body, (at, old[at], body)
                at += 1
            if lines[i][0] in " +":
                out.append(body)
            i += 1
    return "".join(out + old[at:])


def test_regenerating_gives_identical_files(compare_run: Path, run_copy: Path) -> None:
    """`hwsim report` on a copy reproduces, byte for byte, what compare wrote."""
    (run_copy / "report.md").unlink()
    regenerated = write_report(run_copy)
    assert regenerated
    for path in regenerated:
        original = compare_run / path.relative_to(run_copy)
        assert path.read_bytes() == original.read_bytes(), path.name


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (7680, "bit", "7.68 kbit"),
        (0, "bit", "0 bit"),
        (3.6e-5, "s", "36.0 µs"),
        (9.9999e-4, "J", "1.00 mJ"),
        (1.5e9, "bit", "1.50 Gbit"),
    ],
)
def test_si_formatting(value: float, unit: str, text: str) -> None:
    assert format_si(value, unit) == text


def test_significant_digits_and_prefix_choice() -> None:
    assert format_sig(1.0199834) == "1.020"
    assert format_sig(1234.5) == "1,234"  # no decimals once the 4 digits are integers
    assert format_sig(0.012345) == "0.01235"
    assert si_prefix(999.0) == (1.0, "") and si_prefix(1000.0) == (1e3, "k")


def test_prng_chips_report_the_dram_accesses_regeneration_saves(compare_run: Path) -> None:
    from hwsim.sim.chip import load_chip
    from hwsim.sim.feedback_storage import prng_against_stored

    summary = json.loads((compare_run / "summary.json").read_text())
    survey = {entry["chip"]: entry for entry in summary["chip_survey"]}
    assert "prng_against_stored" not in survey["edge_sram"]  # B stored in SRAM already
    for name in ("dfa_prng", "df_lnpu"):  # regenerate B: in the report, and in the survey only
        savings = survey[name]["prng_against_stored"]
        assert [s["rule"] for s in savings] == ["fa", "ifa"]  # BP keeps no feedback
        workload = next((compare_run / "runs").glob("fa-seed0-*")) / "workload.json"
        (expected,) = prng_against_stored(workload, load_chip(name), ["fa"])
        assert savings[0] == expected.to_dict()
        assert (
            savings[0]["stored_accesses"] - savings[0]["prng_accesses"]
            == (savings[0]["stored_feedback_accesses"])
        )
    markdown = (compare_run / "report.md").read_text()
    fa = survey["df_lnpu"]["prng_against_stored"][0]
    assert (
        f"On df_lnpu, regenerating the feedback with the PRNG instead of storing it in dram "
        f"changes a step's DRAM accesses by: fa {100 * fa['reduction']:+.2f} %" in markdown
    )


def test_the_report_says_where_the_runs_were_trained(compare_run: Path) -> None:
    import torch

    env = json.loads((compare_run / "summary.json").read_text())["environment"]
    report = (compare_run / "report.md").read_text()
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    line = next(x for x in report.splitlines() if "per run" in x)
    assert f"Trained on cpu ({env['cpu']})" in line and f"torch {env['torch']}" in line
    assert f"{env['threads']} torch thread" in line
