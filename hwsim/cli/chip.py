"""``hwsim chip``: list the shipped chips, copy one to edit (``init``), validate and show."""

from __future__ import annotations

import shlex
from typing import Any

import click
from rich.table import Table

from hwsim.cli import main
from hwsim.cli.common import InputError, console, err_console
from hwsim.core.resources import DEFAULT_COMPARE_CHIP


@main.group()
def chip() -> None:
    """List, copy, validate and show chip configs."""


@chip.command("list")
def list_chips() -> None:
    """The shipped chips, one line each: name and description."""
    from hwsim.core.resources import (
        CHIPS_DIR,
        DEFAULT_CHIP,
        DEFAULT_COMPARE_CHIP,
        shipped_chip_names,
    )
    from hwsim.sim.chip import load_chip

    names = shipped_chip_names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        c = load_chip(CHIPS_DIR / f"{name}.yaml")
        first = c.description.strip().splitlines()[0] if c.description.strip() else ""
        default = {
            DEFAULT_CHIP.stem: " (default of simulate)",
            DEFAULT_COMPARE_CHIP.stem: " (default of compare)",
        }.get(name, "")
        console.print(f"{name:<{width}}  {first}{default}", highlight=False, markup=False)
    err_console.print(
        "copy one to edit it: hwsim chip init NAME --from CHIP", highlight=False, markup=False
    )


@chip.command()
@click.argument("name")
@click.option(
    "--from",
    "template",
    default=None,
    help="The shipped chip to copy (hwsim chip list) [default: "
    f"{DEFAULT_COMPARE_CHIP.stem}, the chip hwsim compare uses by default].",
)
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
def init(name: str, template: str | None, force: bool) -> None:
    """Copy a shipped chip to ./NAME.yaml (or to NAME, a path) to edit it.

    Without --from it copies the chip `hwsim compare` uses by default.

    The copy keeps every comment and source note; only its name: becomes NAME. Edit the copy,
    never the installed chip, then use it with --chip NAME.yaml.
    """
    from hwsim.sim.chip_copy import DEFAULT_TEMPLATE, copy_shipped_chip

    template = template or DEFAULT_TEMPLATE
    target, chip_name = copy_shipped_chip(name, template=template, force=force)
    stem = template.removesuffix(".yaml")
    console.print(f"[green]wrote[/] {target} (chip {chip_name!r}, from {stem})", highlight=False)
    quoted = shlex.quote(str(target))
    err_console.print(
        f"edit it, check it with: hwsim chip validate {quoted}; use it with: --chip {quoted}",
        highlight=False,
        markup=False,
    )


@chip.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Validate chip YAML files; every problem is listed with its file, line and key."""
    from hwsim.sim.chip import load_chip

    problems = []
    for file in files:
        try:
            load_chip(file)
            console.print(f"[green]ok[/] {file}", highlight=False)
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError("\n".join(problems))


@chip.command()
@click.argument("file", type=click.Path(dir_okay=False))
def show(file: str) -> None:
    """Print a chip's memory hierarchy, interconnect, compute and placement."""
    from hwsim.sim.chip import load_chip

    c = load_chip(file)
    console.print(f"[bold]{c.name}[/] — {c.description} ({c.clock_hz / 1e6:g} MHz)")
    # One column per memory and one row per property; as many memories per table as fit the
    # terminal (split_cores's seven levels take two at 80 columns), so no number is cut.
    rows = [
        ("kind", lambda m: m.kind),
        ("technology", lambda m: m.technology),
        ("size (bytes)", lambda m: f"{m.size_bytes:,}"),
        ("word (bits)", lambda m: str(m.word_bits)),
        ("banks", lambda m: str(m.banks)),
        ("ports", lambda m: str(m.ports)),
        ("burst (words)", lambda m: str(m.burst_words)),
        ("read (pJ/access)", lambda m: f"{m.read_energy_pj:g}"),
        ("write (pJ/access)", lambda m: "—" if m.kind == "rom" else f"{m.write_energy_pj:g}"),
        ("bandwidth (bit/cycle)", lambda m: str(m.bandwidth_bits_per_cycle)),
        ("latency (cycles)", lambda m: str(m.latency_cycles)),
        ("leakage (mW)", lambda m: f"{m.leakage_mw:g}"),
        (
            "endurance (writes)",
            lambda m: "—" if m.endurance_cycles is None else f"{m.endurance_cycles:g}",
        ),
        ("retention (s)", lambda m: "—" if m.retention_s is None else f"{m.retention_s:g}"),
        ("area (mm²)", _area_cell),
    ]
    for table in property_tables(
        "memories (innermost first)",
        [label for label, _ in rows],
        [(m.name, [cell(m) for _, cell in rows]) for m in c.memories],
    ):
        console.print(table)
    sized = [m.name for m in c.memories if m.model is not None]
    if sized:
        console.print(
            f"sized by a model (energies, latency, leakage, area): {', '.join(sized)}; "
            "* derived area (sources below)",
            highlight=False,
        )
    elif any(m.area_source is not None and m.area_mm2 for m in c.memories):
        console.print("* derived area (sources below)", highlight=False)
    cim = [m for m in c.memories if m.cim is not None]
    if cim:
        # compute-in-memory levels: a cim level's read is one row read out, its write one cell
        # programmed (docs/simulator.md, "Compute-in-memory arrays")
        array_rows = [
            ("arrays × rows × columns", lambda a: f"{a.arrays} × {a.rows} × {a.columns}"),
            ("bits per cell", lambda a: str(a.bits_per_cell)),
            ("activation (pJ)", lambda a: f"{a.activation_energy_pj():.4g}"),
            (
                "transposed (pJ)",
                lambda a: f"{a.activation_energy_pj(True):.4g}" if a.transpose_read else "—",
            ),
            ("input bits / DAC bits", lambda a: f"{a.input_bits} / {a.dac_bits}"),
            ("activation (cycles)", lambda a: str(a.mvm_latency_cycles)),
            ("write pulses × cycles", lambda a: f"{a.write_pulses:g} × {a.write_latency_cycles}"),
            ("cells programmed at once", lambda a: str(a.write_parallel_cells)),
        ]
        columns = [
            (
                m.name,
                [
                    *(acell(m.cim) for _, acell in array_rows),
                    f"{m.cim.program_energy_pj(m.write_energy_pj):.4g}",
                ],
            )
            for m in cim
            if m.cim is not None
        ]
        labels = [label for label, _ in array_rows] + ["program a cell (pJ)"]
        for table in property_tables("compute-in-memory arrays", labels, columns):
            console.print(table)
    link = c.interconnect
    console.print(
        f"interconnect: {link.bandwidth_bits_per_cycle} bit/cycle, {link.latency_cycles} cycles, "
        f"{link.energy_per_bit_pj:g} pJ/bit",
        highlight=False,
    )
    units = ", ".join(f"{u} {n} MAC/cycle" for u, n in c.macs_per_cycle.items())
    console.print(f"compute: {units}", highlight=False)
    console.print(area_line(c), highlight=False, soft_wrap=True)
    # The MAC table by number format: a MAC in a format the chip lacks runs on the narrowest
    # wider format of its family (docs/simulator.md, "Number formats").
    macs = Table()
    macs.add_column("MAC format")
    macs.add_column("pJ per MAC", justify="right")
    for name, pj in c.mac_energy_pj.items():
        macs.add_row(name, f"{pj:g}")
    console.print(macs)
    placement = ", ".join(f"{t} → {level}" for t, level in c.placement.items())
    console.print(f"placement: {placement}", highlight=False)
    reuse = c.samples_per_weight_fetch or "auto"
    prng = f" ({c.prng_energy_per_value_pj:g} pJ/value)" if c.feedback_storage == "prng" else ""
    sync = [f"synchronized via {c.mirror_sync_via}"] if c.mirror_sync_via else []
    if c.mirror_sync == "changed":
        sync.append("only the changed weights synchronized")
    via = f" ({', '.join(sync)})" if sync else ""
    console.print(
        f"training: BP weight access {c.bp_weight_access}{via}, feedback {c.feedback_storage}"
        f"{prng}, loop order {c.loop_order}, samples per weight fetch {reuse}, update "
        f"{c.update}, gradients {c.gradient_format}, optimizer state "
        f"{c.optimizer_state_format}",
        highlight=False,
    )
    # Each source: note once, after the numbers it covers (key paths relative to its mapping).
    console.print("sources (each number, then the source: note that covers it):", highlight=False)
    groups: dict[str, list[str]] = {}
    notes: dict[str, str] = {}
    for key, sourced in c.sources.items():
        relative = key.removeprefix(f"{sourced.at}.") if sourced.at else key
        groups.setdefault(sourced.at, []).append(f"{relative} {sourced.value}")
        notes[sourced.at] = sourced.source
    for at, numbers in groups.items():
        console.print(
            f"  {at or 'chip'}: {', '.join(numbers)}", highlight=False, markup=False, soft_wrap=True
        )
        console.print(f"    source: {notes[at]}", highlight=False, markup=False, soft_wrap=True)
    if not groups:
        console.print("  (no source: notes)", highlight=False)
    # Numbers no file gives: a size model's, the derived areas (docs/simulator.md, "Size and
    # area"), each once under its source.
    derived: dict[str, list[str]] = {}
    for key, number in c.derived_numbers().items():
        derived.setdefault(number.source, []).append(f"{key} {number.value:.4g}")
    if derived:
        console.print("derived (no chip file gives them; each number, then its source):")
        for source, numbers in derived.items():
            console.print(
                f"  derived: {', '.join(numbers)}", highlight=False, markup=False, soft_wrap=True
            )
            console.print(f"    source: {source}", highlight=False, markup=False, soft_wrap=True)
    err_console.print(f"from {file}", highlight=False)


def property_tables(
    title: str, labels: list[str], columns: list[tuple[str, list[str]]]
) -> list[Table]:
    """Tables of one row per label and one column per ``(header, cells)``, as many columns to a
    table as fit the console's width with every cell whole (a header may fold, as may a single
    column too wide for any terminal); the next tables are titled "… (continued)"."""
    from rich.measure import Measurement

    def build(part: list[tuple[str, list[str]]], heading: str) -> Table:
        table = Table(title=heading)
        table.add_column("", overflow="fold")
        for header, _ in part:
            table.add_column(header, justify="right", overflow="fold")
        for i, label in enumerate(labels):
            table.add_row(label, *(cells[i] for _, cells in part))
        return table

    def fits(part: list[tuple[str, list[str]]]) -> bool:
        # a cell never folds: the narrowest table that keeps every cell's longest word whole,
        # with the headers measured as if they could fold anywhere
        probe = build([("", cells) for _, cells in part], "")
        unbounded = console.options.update_width(100_000)  # measured, not clamped to the width
        return Measurement.get(console, unbounded, probe).minimum <= console.width

    tables: list[Table] = []
    part: list[tuple[str, list[str]]] = []
    for column in columns:
        if part and not fits([*part, column]):
            tables.append(build(part, title if not tables else f"{title} (continued)"))
            part = []
        part.append(column)
    if part or not tables:
        tables.append(build(part, title if not tables else f"{title} (continued)"))
    return tables


def _area_cell(level: Any) -> str:
    """A level's area in the memories table: ``—`` unknown, ``*`` derived, 0 off chip."""
    if level.area_mm2 is None:
        return "—"
    derived = level.area_source is not None and level.kind != "dram"
    return f"{level.area_mm2:.3g}{'*' if derived else ''}"


def area_line(chip: Any) -> str:
    """``area: 25.2 mm² on chip: memories 16.1 mm², MACs 9.13 mm²`` (DRAM is off chip, levels of
    unknown area named)."""
    parts = chip.areas()
    memories = sum(p.mm2 for p in parts if p.what == "memory" and p.mm2 is not None)
    macs = next(p for p in parts if p.what == "compute")
    unknown = [p.name for p in parts if p.mm2 is None]
    text = f"area: {chip.area_mm2:.3g} mm² on chip: memories {memories:.3g} mm², MACs " + (
        "unknown" if macs.mm2 is None else f"{macs.mm2:.3g} mm²"
    )
    if any(m.kind == "dram" for m in chip.memories):
        text += "; DRAM off chip"
    if unknown:
        text += f"; no area known for {', '.join(unknown)} (not counted)"
    return text
