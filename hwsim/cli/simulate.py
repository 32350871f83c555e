"""``hwsim simulate``: simulate a chip training a workload with each learning rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hwsim.cli import main
from hwsim.cli.common import InputError, console, echo_json, set_option
from hwsim.core.rules import RULE_SYNTAX
from hwsim.core.units import format_si


@main.command()
@click.option(
    "--algo",
    default="bp,fa,ifa",
    show_default=True,
    help="Rules, comma-separated: " + RULE_SYNTAX + ".",
)
@click.option(
    "--chip",
    "chip_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Chip YAML file or shipped chip name [default: edge_sram].",
)
@set_option()
@click.option(
    "--workload",
    "workload_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="workload.json of a training run.",
)
@click.option("--model", default=None, help="Model spec instead: mlp:784-256-256-10 or resnet18.")
@click.option("--batch-size", type=int, default=None, help="Batch size with --model [default: 64].")
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "momentum", "adam"]),
    default=None,
    help="Optimizer with --model (0, 1, 2 state tensors per weight) [default: momentum].",
)
@click.option(
    "--weight-bits", type=click.IntRange(1, 64), default=None, help="With --model [default: 8]."
)
@click.option(
    "--act-bits", type=click.IntRange(1, 64), default=None, help="With --model [default: 8]."
)
@click.option(
    "--feedback-bits",
    type=click.IntRange(1, 64),
    default=None,
    help="B's width with --model [default: 8].",
)
@click.option(
    "--error-bits",
    type=click.IntRange(1, 64),
    default=None,
    help="Errors' width with --model [default: 8; 32 alone means fp32, as training records].",
)
@click.option(
    "--error-format",
    default=None,
    metavar="FORMAT",
    help="Errors' number format with --model: int8, int16, fp16, bf16, fp32… (sets the width; "
    "with --error-bits both must agree) [default: int8].",
)
@click.option(
    "--timeline",
    is_flag=True,
    help="The event timeline of one step: in the --json output, or without --json drawn to "
    "reports/simulate/timeline_<chip>.png.",
)
@click.option(
    "--actions",
    "actions_path",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="Also write the action counts of every rule (reads, writes, MACs… per component, "
    "layer and phase, each with its energy) to PATH: .csv or .json (docs/simulator.md, "
    '"Action counts").',
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
def simulate(
    algo: str,
    chip_file: str | None,
    overrides: tuple[str, ...],
    workload_file: str | None,
    model: str | None,
    batch_size: int | None,
    optimizer: str | None,
    weight_bits: int | None,
    act_bits: int | None,
    feedback_bits: int | None,
    error_bits: int | None,
    error_format: str | None,
    timeline: bool,
    actions_path: str | None,
    as_json: bool,
) -> None:
    """Count, time and price every memory access of on-chip training, per rule.

    The workload is a training run's workload.json (--workload), which carries its own batch,
    bit widths and optimizer, or a model spec (--model) with the assumptions the options set:
    batch 64, int8 weights, activations, feedback and errors, SGD with momentum (1 state tensor
    per weight), unless set; the input shape is the spec's (mlp:784-…: 784 values; resnet18:
    3×32×32). The line under the table states them all. Energy and latency are per training
    step, in the units of hwsim compare (µJ, mJ; µs, ms).
    """
    from hwsim.cli.chip import area_line
    from hwsim.core.formats import parse_format
    from hwsim.core.resources import DEFAULT_CHIP
    from hwsim.core.workload import load_workload, workload_from_dict
    from hwsim.sim.actions import actions_form, simulation_actions, unknown_ending, write_actions
    from hwsim.sim.api import simulate as run_simulation
    from hwsim.sim.area import describe_own_silicon
    from hwsim.sim.chip import load_chip
    from hwsim.sim.feedback_storage import prng_against_stored
    from hwsim.sim.model_specs import build_workload
    from hwsim.sim.wear import describe_wear

    if (workload_file is None) == (model is None):
        raise InputError("give exactly one of --workload FILE or --model SPEC")
    if actions_path is not None and actions_form(actions_path) is None:
        raise InputError(unknown_ending(actions_path, "--actions"))
    spec_options = {
        "batch_size": batch_size,
        "optimizer": optimizer,
        "weight_bits": weight_bits,
        "activation_bits": act_bits,
        "feedback_bits": feedback_bits,
        "error_bits": error_bits,
        "error_format": error_format,
    }
    given = {k: v for k, v in spec_options.items() if v is not None}
    if workload_file is not None:
        if given:
            options = ", ".join("--" + k.replace("_", "-") for k in given)
            raise InputError(f"{options}: only with --model (a workload file has its own)")
        workload = workload_file
    else:
        assert model is not None
        if error_format is not None:
            fmt = parse_format(error_format, "--error-format")
            if error_bits is not None and error_bits != fmt.bits:
                raise InputError(
                    f"--error-bits {error_bits} contradicts --error-format {fmt.name} "
                    f"({fmt.bits} bits): give one, or both agreeing"
                )
        workload = workload_from_dict(build_workload(model, **given), model)
    chip = load_chip(chip_file or DEFAULT_CHIP, overrides=overrides)
    result = run_simulation(workload, chip, algo, timeline=timeline)
    savings = prng_against_stored(workload, chip, algo, simulated=result.rules)
    if actions_path is not None:
        write_actions(actions_path, simulation_actions(result, chip), "--actions")
    if as_json:
        document = result.to_dict()
        if savings:
            document["prng_against_stored"] = [s.to_dict() for s in savings]
        echo_json(document)
        return
    work = load_workload(workload) if isinstance(workload, str) else workload
    optimizer_name = (optimizer or "momentum") if model is not None else _file_optimizer(workload)
    console.print(simulate_table(result, chip.clock_hz))
    console.print(
        _assumptions(result.workload, work, optimizer_name), highlight=False, soft_wrap=True
    )
    for spec, r in result.rules.items():
        console.print(_orders_line(spec, r), highlight=False, soft_wrap=True)
        if r.search:
            console.print(_search_line(spec, r.search), highlight=False, soft_wrap=True)
        arrays = _arrays_line(spec, r.mapping)
        if arrays:
            console.print(arrays, highlight=False, soft_wrap=True)
        if r.spills:
            console.print(_spills_line(spec, r.spills), highlight=False, soft_wrap=True)
    console.print(area_line(chip), highlight=False, soft_wrap=True)
    for spec, r in result.rules.items():
        if r.own_silicon:
            console.print(
                f"{spec}: silicon for its own tensors: {describe_own_silicon(r.own_silicon)}",
                highlight=False,
                soft_wrap=True,
            )
    if savings:
        parts = ", ".join(
            f"{s.rule} {100 * s.reduction:+.2f} % ({s.stored_accesses:,} → {s.prng_accesses:,})"
            for s in savings
        )
        console.print(
            f"PRNG against feedback stored in {savings[0].level}: DRAM accesses per step {parts}",
            highlight=False,
            soft_wrap=True,
        )
    for spec, r in result.rules.items():
        if r.wear is not None:
            console.print(f"{spec}: wear: {describe_wear(r.wear)}", highlight=False, soft_wrap=True)
    for spec, r in result.rules.items():
        if r.run_totals is not None:
            rt = r.run_totals
            console.print(
                f"{spec}: whole run ({rt.epochs} epochs × {rt.steps_per_epoch} steps): "
                f"{format_si(rt.energy.total_pj * 1e-12, 'J')}, {format_si(rt.latency_s, 's')}",
                highlight=False,
            )
    if timeline:
        path = _draw_timeline(result, chip)
        console.print(f"timeline of one step per rule → {path}", highlight=False, soft_wrap=True)
    if actions_path is not None:
        console.print(
            f"action counts of every rule → {actions_path}", highlight=False, soft_wrap=True
        )


def simulate_table(result: Any, clock_hz: float) -> Table:
    """One row per rule, per training step, in the units of ``hwsim compare`` (one SI prefix per
    value: µJ, mJ; µs, ms; kbit, Mbit; ``format_si``); it fits an 80-column terminal (cells
    fold rather than being cut to ``…``; cycles and every count are in ``--json``)."""
    title = (
        f"{result.workload['model'] or 'workload'} on chip {result.chip} "
        f"({clock_hz / 1e6:g} MHz), per training step"
    )
    table = Table(title=title, show_edge=False)
    table.add_column("rule", justify="right", min_width=max(map(len, result.rules), default=4))
    for column in (
        "energy",
        "latency",
        "weight transport",
        "sync writes",
        "feedback reads",
        "MACs",
    ):
        table.add_column(column, justify="right", overflow="fold")
    for spec, r in result.rules.items():
        table.add_row(
            spec,
            format_si(r.energy_pj * 1e-12, "J"),
            format_si(r.latency_s, "s"),
            format_si(r.weight_transport_bits, "bit"),
            format_si(r.sync_write_bits, "bit"),
            format_si(r.feedback_read_bits, "bit"),
            format_si(r.macs, ""),
        )
    return table


#: ``hwsim simulate --timeline`` without ``--json`` draws the timeline here (under the current
#: directory), named after the chip.
TIMELINE_DIR = "reports/simulate"


def _draw_timeline(result: Any, chip: Any) -> Path:
    """Draw the step timeline of every rule with the compare report's figure
    (:func:`hwsim.render.compare_figures.timeline_figure`) to ``TIMELINE_DIR``; the path."""
    import matplotlib

    from hwsim.core.files import write_atomic
    from hwsim.render.compare_figures import timeline_figure
    from hwsim.render.compare_run import RunData
    from hwsim.render.style import FIGURE_STYLE

    data = RunData(
        run_dir=Path.cwd(),
        summary={"chips": {result.chip: {"clock_hz": chip.clock_hz}}},
        rules=list(result.rules),
        chips=[result.chip],
        seed_runs={},
        simulations={result.chip: {s: r.to_dict() for s, r in result.rules.items()}},
        chip_texts={},
        chip_memories={result.chip: [m.name for m in chip.memories]},
        experiment_text="",
    )
    with matplotlib.rc_context(FIGURE_STYLE):
        figure = timeline_figure(data, result.chip)
    path = Path(TIMELINE_DIR) / figure.name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, figure.png)
    return path


def _file_optimizer(path: str) -> str:
    """The optimizer a ``workload.json`` names (``optimizer.name``), or ``unnamed``."""
    import json

    try:
        name = json.loads(Path(path).read_text(encoding="utf-8"))["optimizer"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unnamed"
    return str(name)


def _assumptions(workload: dict[str, Any], work: Any, optimizer: str) -> str:
    """One line stating what the numbers assume: the model and its input shape, the batch, the
    number formats (bit widths) of every operand and the optimizer with its state tensors."""

    def formats(field: str) -> str:
        return "/".join(workload[field])

    shape = "×".join(map(str, work.layers[0].input_shape)) if work.layers else "?"
    state = workload["optimizer_state_per_weight"]
    return (
        f"workload: {workload['model'] or 'from file'}, input {shape}, "
        f"batch {workload['batch_size']}, "
        f"{formats('weight_format')} weights, {formats('activation_format')} activations, "
        f"{formats('feedback_format')} feedback, {formats('error_format')} errors, "
        f"optimizer {optimizer} ({state} state tensor{'' if state == 1 else 's'} per weight)"
    )


def _orders_line(spec: str, rule: Any) -> str:
    """How many layers took each loop order, per phase (``--json`` has every layer's)."""
    from hwsim.sim.loops import orders_taken

    parts = [
        f"{phase} " + ", ".join(f"{n} in {c} layer(s)" for n, c in taken.items())
        for phase, taken in orders_taken(rule.loop_orders).items()
    ]
    update = "fused per sample" if rule.update == "fused" else "accumulated over the batch"
    return f"{spec}: loop orders: {'; '.join(parts)}; update {update}"


def _arrays_line(spec: str, mapping: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Per phase on a MAC array: its shape, utilization (MACs ÷ element-cycles) and how many
    fetches took each dataflow ("" when no phase ran on an array)."""
    totals: dict[str, dict[str, Any]] = {}
    for phases in mapping.values():
        for phase, nest in phases.items():
            use = nest.get("array")
            if not use:
                continue
            t = totals.setdefault(
                phase, {"shape": f"{use['rows']}×{use['cols']}", "macs": 0, "spent": 0, "df": {}}
            )
            t["macs"] += use["macs"]
            t["spent"] += use["cycles"] * use["rows"] * use["cols"]
            for name, fetches in use["dataflow"].items():
                t["df"][name] = t["df"].get(name, 0) + fetches
    parts = []
    for phase, t in totals.items():
        flows = ", ".join(f"{name.replace('_', '-')} {n}" for name, n in t["df"].items())
        busy = t["macs"] / t["spent"] if t["spent"] else 0.0
        parts.append(f"{phase} {t['shape']} {100 * busy:.0f}% busy ({flows} fetches)")
    return f"{spec}: MAC arrays: {'; '.join(parts)}" if parts else ""


def _search_line(spec: str, search: dict[str, Any]) -> str:
    """What the mapper searched: loop nests generated, fitting, kept; placement choices."""
    return (
        f"{spec}: mapper ({search['objective']}): {search['candidates']:,} loop nests, "
        f"{search['feasible']:,} fit the innermost level, {search['kept']:,} kept after "
        f"pruning; {search['placements']} tensors with a choice of level"
        + ("" if search["optimal"] else f"; stopped {100 * search['gap']:.2g}% from proven")
        + " (--json: the loop nest of every layer and phase)"
    )


def _spills_line(spec: str, spills: Any) -> str:
    """Where a rule's tensors did not get their class's level, grouped by (tensor, from, to,
    why): the level was full, or the mapper found them cheaper elsewhere."""
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for s in spills:
        groups.setdefault((s.tensor, s.preferred, s.placed, s.why), []).append(s.layer)
    parts = [
        f"{tensor} of layers {', '.join(layers)}: "
        + (
            f"{preferred} full → {placed}"
            if why == "full"
            else f"{placed}, cheaper than {preferred}"
        )
        for (tensor, preferred, placed, why), layers in groups.items()
    ]
    return f"{spec}: placed away from their class's level: " + "; ".join(parts)
