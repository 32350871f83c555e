"""``hwsim simulate``: simulate a chip training a workload with each learning rule."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from hwsim.cli import main
from hwsim.cli.common import InputError, console, echo_json, set_option
from hwsim.core.rules import RULE_SYNTAX


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
    help="Chip YAML (default: configs/chips/edge_sram.yaml).",
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
@click.option("--timeline", is_flag=True, help="Include the event timeline in --json output.")
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
    as_json: bool,
) -> None:
    """Count, time and price every memory access of on-chip training, per rule.

    The workload is a training run's workload.json (--workload), or a model spec (--model) with
    the assumptions given by the options: batch 64, int8 weights, activations, feedback and
    errors, SGD with momentum, unless set; the line under the table states them.
    """
    from hwsim.core.formats import parse_format
    from hwsim.core.resources import DEFAULT_CHIP
    from hwsim.core.workload import workload_from_dict
    from hwsim.sim.api import simulate as run_simulation
    from hwsim.sim.chip import load_chip
    from hwsim.sim.feedback_storage import prng_against_stored
    from hwsim.sim.model_specs import build_workload

    if (workload_file is None) == (model is None):
        raise InputError("give exactly one of --workload FILE or --model SPEC")
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
    if as_json:
        document = result.to_dict()
        if savings:
            document["prng_against_stored"] = [s.to_dict() for s in savings]
        echo_json(document)
        return
    table = Table(title=f"{result.workload['model'] or 'workload'} on chip {result.chip}")
    for column in (
        "rule",
        "energy / step (µJ)",
        "latency / step (cycles)",
        "latency / step (ms)",
        "weight transport (bits)",
        "sync writes (bits)",
        "feedback reads (bits)",
        "MACs",
    ):
        table.add_column(column, justify="right")
    for spec, r in result.rules.items():
        table.add_row(
            spec,
            f"{r.energy_pj / 1e6:,.3f}",
            f"{r.latency_cycles:,}",
            f"{r.latency_s * 1e3:,.3f}",
            f"{r.weight_transport_bits:,}",
            f"{r.sync_write_bits:,}",
            f"{r.feedback_read_bits:,}",
            f"{r.macs:,}",
        )
    console.print(table)
    console.print(_assumptions(result.workload), highlight=False)
    for spec, r in result.rules.items():
        console.print(_orders_line(spec, r), highlight=False, soft_wrap=True)
        if r.spills:
            console.print(_spills_line(spec, r.spills), highlight=False, soft_wrap=True)
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
        if r.run_totals is not None:
            rt = r.run_totals
            console.print(
                f"{spec}: whole run ({rt.epochs} epochs × {rt.steps_per_epoch} steps): "
                f"{rt.energy.total_pj / 1e12:,.4f} J, {rt.latency_s:,.3f} s",
                highlight=False,
            )


def _assumptions(workload: dict[str, Any]) -> str:
    """One line stating the workload the numbers are for (number formats, optimizer, batch)."""

    def formats(field: str) -> str:
        return "/".join(workload[field])

    return (
        f"workload: {workload['model'] or 'from file'}, batch {workload['batch_size']}, "
        f"{formats('weight_format')} weights, {formats('activation_format')} activations, "
        f"{formats('feedback_format')} feedback, {formats('error_format')} errors, "
        f"{workload['optimizer_state_per_weight']} optimizer state tensor(s) per weight"
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


def _spills_line(spec: str, spills: Any) -> str:
    """Where a rule's tensors did not get their class's level, grouped by (tensor, from, to)."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for s in spills:
        groups.setdefault((s.tensor, s.preferred, s.placed), []).append(s.layer)
    parts = [
        f"{tensor} of layers {', '.join(layers)}: {preferred} full → {placed}"
        for (tensor, preferred, placed), layers in groups.items()
    ]
    return f"{spec}: spilled (levels go to the most accessed bits first): " + "; ".join(parts)
