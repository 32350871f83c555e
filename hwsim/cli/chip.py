"""``hwsim chip``: list the shipped chips, copy one to edit (``init``), validate and show."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
from rich.table import Table

from hwsim.cli import main
from hwsim.cli.common import InputError, console, err_console

#: The chip ``hwsim chip init`` copies when no ``--from`` is given.
DEFAULT_TEMPLATE = "edge_sram"
#: A top-level ``name:`` line with a one-line value, and any comment after it.
_NAME_LINE = re.compile(r"^name:[ \t]*(?P<value>[^#\s][^#]*?)?(?P<comment>[ \t]+#.*)?$")


@main.group()
def chip() -> None:
    """List, copy, validate and show chip configs."""


@chip.command("list")
def list_chips() -> None:
    """The shipped chips, one line each: name and description."""
    from hwsim.core.resources import CHIPS_DIR, DEFAULT_CHIP, shipped_chip_names
    from hwsim.sim.chip import load_chip

    names = shipped_chip_names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        c = load_chip(CHIPS_DIR / f"{name}.yaml")
        first = c.description.strip().splitlines()[0] if c.description.strip() else ""
        default = " (default)" if name == DEFAULT_CHIP.stem else ""
        console.print(f"{name:<{width}}  {first}{default}", highlight=False, markup=False)
    err_console.print(
        "copy one to edit it: hwsim chip init NAME --from CHIP", highlight=False, markup=False
    )


def init_target(name: str) -> tuple[Path, str]:
    """The file ``hwsim chip init NAME`` writes and the chip name it gets.

    ``mine`` → ``./mine.yaml``; a NAME ending in ``.yaml`` (or ``.yml``) or holding a directory
    is the file as given. The chip is named after the file, without the YAML suffix.
    """
    path = Path(name)
    if not name.strip() or not path.name or path.name in (".", ".."):
        raise InputError(f"chip init: {name!r} is no file name")
    if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1:
        path = Path(f"{name}.yaml")
    chip_name = path.name[: -len(path.suffix)] if path.suffix in (".yaml", ".yml") else path.name
    if not chip_name:
        raise InputError(f"chip init: {name!r} gives the chip no name")
    return path, chip_name


def renamed_chip_text(text: str, new_name: str, file: str | Path) -> str:
    """``text`` (a chip YAML file) with its top-level ``name:`` value set to ``new_name``.

    Only that line changes: every comment, ``source:`` note and the layout stay as they are.
    The result is parsed back and must equal the original document but for the name.
    """
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        original = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{file}: invalid YAML: {exc}") from None
    keys = root.value if isinstance(root, yaml.MappingNode) else []
    line_no = next((k.start_mark.line for k, _ in keys if k.value == "name"), None)
    rows = text.splitlines(keepends=True)
    match = _NAME_LINE.match(rows[line_no].rstrip("\r\n")) if line_no is not None else None
    if line_no is None or match is None or match.group("value") is None:
        raise InputError(f"{file}: no one-line top-level 'name:' to rename")
    # safe_dump quotes the name where YAML needs it (a colon, a leading '-', 'yes', a number...)
    line = yaml.safe_dump({"name": new_name}, allow_unicode=True, width=10**6).rstrip("\n")
    ending = rows[line_no][len(rows[line_no].rstrip("\r\n")) :]
    rows[line_no] = f"{line}{match.group('comment') or ''}{ending}"
    new_text = "".join(rows)
    if yaml.safe_load(new_text) != {**original, "name": new_name}:
        raise InputError(f"{file}: renaming the chip to {new_name!r} would change more")
    return new_text


@chip.command()
@click.argument("name")
@click.option(
    "--from",
    "template",
    default=DEFAULT_TEMPLATE,
    show_default=True,
    help="The shipped chip to copy (hwsim chip list).",
)
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
def init(name: str, template: str, force: bool) -> None:
    """Copy a shipped chip to ./NAME.yaml (or to NAME, a path) to edit it.

    The copy keeps every comment and source note; only its name: becomes NAME. Edit the copy,
    never the installed chip, then use it with --chip NAME.yaml.
    """
    import yaml

    from hwsim.core.files import read_text, write_atomic
    from hwsim.core.resources import CHIPS_DIR, shipped_chip_names
    from hwsim.sim.chip import chip_from_dict

    shipped = shipped_chip_names()
    stem = template.removesuffix(".yaml")
    if stem not in shipped:
        raise InputError(
            f"--from {template}: no shipped chip of that name (shipped chips: {', '.join(shipped)})"
        )
    source = CHIPS_DIR / f"{stem}.yaml"
    target, chip_name = init_target(name)
    if target.is_dir():
        raise InputError(f"{target} is a directory; name a file for the new chip")
    if target.exists() and target.resolve() == source.resolve():
        raise InputError(f"{target} is the installed {stem} chip itself; copy it elsewhere")
    if target.exists() and not force:
        raise InputError(f"{target} already exists; pass --force to overwrite it")
    text = renamed_chip_text(read_text(source, "a shipped chip YAML file"), chip_name, source)
    chip_from_dict(yaml.safe_load(text), target)  # the copy validates before it is written
    write_atomic(target, text)
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
    # One column per memory (there are few) and one row per property, so it fits 80 columns.
    levels = Table(title="memories (innermost first)")
    levels.add_column("")
    for m in c.memories:
        levels.add_column(m.name, justify="right")
    rows = [
        ("kind", lambda m: m.kind),
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
    ]
    for label, cell in rows:
        levels.add_row(label, *(cell(m) for m in c.memories))
    console.print(levels)
    link = c.interconnect
    console.print(
        f"interconnect: {link.bandwidth_bits_per_cycle} bit/cycle, {link.latency_cycles} cycles, "
        f"{link.energy_per_bit_pj:g} pJ/bit",
        highlight=False,
    )
    units = ", ".join(f"{u} {n} MAC/cycle" for u, n in c.macs_per_cycle.items())
    macs = ", ".join(f"≤{bits} bit {pj:g} pJ" for bits, pj in c.mac_energy_pj)
    console.print(f"compute: {units}; MAC energy: {macs}", highlight=False)
    placement = ", ".join(f"{t} → {level}" for t, level in c.placement.items())
    console.print(f"placement: {placement}", highlight=False)
    reuse = c.samples_per_weight_fetch or "auto"
    prng = f" ({c.prng_energy_per_value_pj:g} pJ/value)" if c.feedback_storage == "prng" else ""
    console.print(
        f"training: BP weight access {c.bp_weight_access}, feedback {c.feedback_storage}{prng}, "
        f"samples per weight fetch {reuse}, gradients {c.gradient_bits} bit, "
        f"optimizer state {c.optimizer_state_bits} bit",
        highlight=False,
    )
    err_console.print(f"from {file}", highlight=False)
