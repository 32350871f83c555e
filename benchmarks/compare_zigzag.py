"""hwsim's forward-pass counts against ZigZag's energy-optimal mapping on an equivalent chip.

Run: ``python benchmarks/compare_zigzag.py [--chip edge_sram] [--resnet-batch 1] [--json FILE]``
in an environment where ZigZag is installed (``pip install zigzag-dse``, with ``six``; it is no
dependency of hwsim: without it this prints why and exits 0).

For a few layers — dense 784→256 and 256→256 of the default MLP (batch 64), and ResNet-18's
conv2 (64→64, 3×3, 32×32) and conv13 (128→256, 1×1, stride 2, 16×16 → 8×8) at
``--resnet-batch`` — it reads hwsim's forward-phase counts of that layer from ``simulate``'s
``counts_by_layer`` (rule bp; the forward pass is the same for every rule) and asks ZigZag for
the mapping of least energy of the same forward product on a chip built from the same chip
file:

* the innermost level (``rf``: 8 KB, shared by the three operands, one for the whole array);
* the level hwsim placed each operand of this layer in (weights, inputs, outputs), with the
  same word width, burst and per-access read/write energies (a DRAM access is one burst);
* a MAC array of ``compute.forward.macs_per_cycle`` MACs (16×16 for 256), unrolled over output
  × input channels (K 16 × C 16);
* 8-bit operands as in the workload; partial sums kept at the outputs' 8-bit stored width
  (hwsim's working set counts them so, and hwsim never spills partial sums; ``--psum-bits 24``
  gives ZigZag realistic accumulators instead).

Two hierarchies per layer: ``same`` — register file, then each operand's home level: the space
hwsim's mapper searches (tiles in the innermost level only), with every loop order ZigZag
knows; and ``staged`` — where an operand's home is the DRAM, its class's on-chip SRAM
(``act_sram``/``weight_sram``) in between, as a second level of tiles (hwsim has none). The
two differ only where hwsim placed something in the DRAM.

Reported per layer: accesses by level and memory energy above the register file (what hwsim
prices), ZigZag's register-file energy (what hwsim does not price), and hwsim ÷ ZigZag.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hwsim.core.workload import Layer, workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.chip import Chip, load_chip
from hwsim.sim.loops import geometry
from hwsim.sim.model_specs import build_workload

DEFAULT_MLP = "mlp:784-256-256-256-256-256-10"
#: ZigZag's memory operand of each layer operand (weights, inputs, outputs)
OPERANDS = {"W": "I2", "I": "I1", "O": "O"}
#: hwsim's class of each ZigZag memory operand (the on-chip level it stages through)
CLASS = {"I2": "weights", "I1": "activations", "O": "activations"}


def hwsim_forward(spec: str, batch: int, name: str, chip: Chip) -> dict[str, Any]:
    """hwsim's forward-phase counts of layer ``name``: per operand its level, accesses and
    memory energy, and the loop nest the mapper chose."""
    work = workload_from_dict(build_workload(spec, batch_size=batch))
    result = simulate(work, chip, "bp").rules["bp"]
    counts = result.step.counts_by_layer[name]
    operands: dict[str, dict[str, Any]] = {}
    for (level, tensor, phase, direction), count in counts.accesses.items():
        if phase != "forward":
            continue
        role = {"weights": "W", "activations": "I" if direction == "read" else "O"}[tensor]
        energy = count.accesses * chip.memory(level).access_energy_pj(direction)
        operands[role] = {
            "level": level,
            "bits": count.bits,
            "accesses": count.accesses,
            "energy_pj": energy,
        }
    layer = next(la for la in work.layers if la.name == name)
    return {
        "layer": layer,
        "loop_nest": result.loop_orders[name]["forward"],
        "operands": operands,
        "energy_pj": sum(o["energy_pj"] for o in operands.values()),
    }


def zigzag_workload(layer: Layer, batch: int, psum_bits: int) -> list[dict[str, Any]]:
    """The layer's forward product in ZigZag's workload format (partial sums of
    ``psum_bits``, final outputs at the next layer's activation width, 8 bits)."""
    precision = {"W": layer.weight_bits, "I": layer.activation_bits, "O": psum_bits, "O_final": 8}
    geo = geometry(layer)
    if geo is None:  # dense
        out, inp = layer.weight_shape
        return [
            {
                "id": 0,
                "name": layer.name,
                "operator_type": "Gemm",
                "equation": "O[b][k]+=W[k][c]*I[b][c]",
                "loop_dims": ["B", "K", "C"],
                "loop_sizes": [batch, out, inp],
                "operand_precision": precision,
            }
        ]
    k, c = layer.weight_shape[:2]
    rows, cols = geo.in_rows, geo.in_cols
    stride = geo.s_rows
    pad = (geo.k_rows // 2, geo.k_rows // 2)
    if geo.k_rows < geo.s_rows:
        # a kernel smaller than its stride reads only every stride-th input: ZigZag's affine
        # relation would count the whole span, so give it the inputs the layer reads (as
        # hwsim does), a stride-1 layer over them
        rows, cols, stride, pad = geo.out_rows, geo.out_cols, 1, (0, 0)
    return [
        {
            "id": 0,
            "name": layer.name,
            "operator_type": "Conv",
            "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
            "dimension_relations": [f"ix={stride}*ox+1*fx", f"iy={stride}*oy+1*fy"],
            "loop_dims": ["B", "K", "C", "OY", "OX", "FY", "FX"],
            "loop_sizes": [batch, k, c, geo.out_rows, geo.out_cols, geo.k_rows, geo.k_cols],
            "operand_precision": precision,
            "pr_loop_dims": ["IX", "IY"],
            "pr_loop_sizes": [cols, rows],
            "padding": [list(pad), list(pad)],
        }
    ]


def port_bits(chip: Chip, name: str) -> tuple[int, int]:
    """(bits of one access, widest port) of a level in ZigZag: one access is one word, or one
    burst of a DRAM; the register file's port feeds the whole array at once."""
    level = chip.memory(name)
    word = level.word_bits * level.burst_words
    return word, 4096 if level is chip.memories[0] else word


def zigzag_chip(chip: Chip, homes: dict[str, str], staged: bool) -> dict[str, Any]:
    """An accelerator of ZigZag equivalent to ``chip`` for one layer whose memory operands
    live in ``homes`` (ZigZag memory operand → chip level)."""
    chains: dict[str, list[str]] = {}
    for op, home in homes.items():
        chain = [chip.memories[0].name]
        on_chip = chip.placement[CLASS[op]]
        if staged and home != on_chip and chip.memory(home).kind == "dram":
            chain.append(on_chip)
        chains[op] = [*chain, home]
    memories: dict[str, Any] = {}
    for level in chip.memories:  # innermost first, as ZigZag lists them
        ops = [op for op in ("I1", "I2", "O") if level.name in chains[op]]
        if not ops:
            continue
        word, widest = port_bits(chip, level.name)
        allocation = []
        for op in ops:
            directions = ("fh", "tl", "fl", "th") if op == "O" else ("fh", "tl")
            allocation += [f"{op}, {d}" for d in directions]
        memories[level.name] = {
            "size": level.size_bits,
            # ZigZag prices an access of the widest port width: the chip's per-word price
            # times the words in it
            "r_cost": level.read_energy_pj * widest / word,
            "w_cost": level.write_energy_pj * widest / word,
            "area": 0,
            "latency": 1,
            "operands": ops,
            "ports": [
                {
                    "name": "rw_port_1",
                    "type": "read_write",
                    "bandwidth_min": word,
                    "bandwidth_max": widest,
                    "allocation": allocation,
                }
            ],
            "served_dimensions": ["D1", "D2"],
        }
    side = math.isqrt(chip.macs_per_cycle["forward"])
    return {
        "name": f"{chip.name}_like",
        "memories": memories,
        "operational_array": {
            "unit_energy": chip.mac_energy_pj.get("int8", 0.0),
            "unit_area": 0,
            "dimensions": ["D1", "D2"],
            "sizes": [side, side],
        },
    }


def run_zigzag(
    layer: Layer,
    batch: int,
    chip: Chip,
    homes: dict[str, str],
    staged: bool,
    psum_bits: int,
    work: Path,
) -> dict[str, Any]:
    """ZigZag's energy-optimal forward mapping of ``layer``: per operand and level its
    accesses (reads + writes, all four directions) and energy, and the mapping."""
    import yaml
    from zigzag.api import get_hardware_performance_zigzag
    from zigzag.datatypes import LayerOperand, MemoryOperand

    side = math.isqrt(chip.macs_per_cycle["forward"])
    accelerator = work / "accelerator.yaml"
    mapping = work / "mapping.yaml"
    accelerator.write_text(yaml.safe_dump(zigzag_chip(chip, homes, staged), sort_keys=False))
    mapping.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "default",
                    "spatial_mapping": {"D1": [f"K, {side}"], "D2": [f"C, {side}"]},
                    "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
                }
            ]
        )
    )
    start = time.perf_counter()
    _, _, cmes = get_hardware_performance_zigzag(
        zigzag_workload(layer, batch, psum_bits),
        str(accelerator),
        str(mapping),
        opt="energy",
        dump_folder=str(work / "out"),
        loma_show_progress_bar=False,
    )
    seconds = time.perf_counter() - start
    cme = cmes[0][1][0][0]
    hierarchy = cme.accelerator.memory_hierarchy
    operands: dict[str, list[dict[str, Any]]] = {}
    for role, mem_op in OPERANDS.items():
        layer_op = LayerOperand(role)
        levels = hierarchy.get_memory_levels(mem_op=MemoryOperand(mem_op))
        accesses, energies = cme.memory_word_access[layer_op], cme.mem_energy_breakdown[layer_op]
        rows = []
        for level, access, energy in zip(levels, accesses, energies, strict=False):
            name = level.memory_instance.name
            word, widest = port_bits(chip, name)  # ZigZag counts accesses of the widest port
            moved = sum(access.data.values())
            rows.append({"level": name, "accesses": moved * widest // word, "energy_pj": energy})
        operands[role] = rows
    inner = chip.memories[0].name
    above = sum(r["energy_pj"] for rows in operands.values() for r in rows if r["level"] != inner)
    rf = sum(r["energy_pj"] for rows in operands.values() for r in rows if r["level"] == inner)
    return {
        "operands": operands,
        "energy_above_rf_pj": above,
        "rf_energy_pj": rf,
        "mapping": str(cme.temporal_mapping),
        "seconds": seconds,
    }


def by_level(zz: dict[str, Any], chip: Chip) -> dict[str, int]:
    """Accesses per level above the register file, all operands."""
    out: dict[str, int] = {}
    for rows in zz["operands"].values():
        for r in rows:
            if r["level"] != chip.memories[0].name:
                out[r["level"]] = out.get(r["level"], 0) + r["accesses"]
    return out


def main() -> None:
    """Print the comparison (and write it as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chip", default="edge_sram")
    parser.add_argument("--resnet-batch", type=int, default=1)
    parser.add_argument(
        "--psum-bits",
        type=int,
        default=8,
        help="ZigZag's partial-sum width [8: the stored output width, as hwsim's working set]",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    try:
        import zigzag.api  # noqa: F401
    except ImportError as err:
        print(f"ZigZag is not installed ({err}); `pip install zigzag-dse six` to compare: skipped")
        return
    logging.disable(logging.WARNING)  # ZigZag logs every stage at INFO and warns on defaults
    chip = load_chip(args.chip)
    cases = [
        (DEFAULT_MLP, 64, "fc1", "dense 784→256, batch 64"),
        (DEFAULT_MLP, 64, "fc2", "dense 256→256, batch 64"),
        (
            "resnet18",
            args.resnet_batch,
            "conv2",
            f"conv2 64→64 3×3 32×32, batch {args.resnet_batch}",
        ),
        (
            "resnet18",
            args.resnet_batch,
            "conv13",
            f"conv13 128→256 1×1 s2 16×16, batch {args.resnet_batch}",
        ),
    ]
    report: dict[str, Any] = {"chip": chip.name, "psum_bits": args.psum_bits, "layers": []}
    for spec, batch, name, title in cases:
        ours = hwsim_forward(spec, batch, name, chip)
        homes = {OPERANDS[role]: o["level"] for role, o in ours["operands"].items()}
        entry: dict[str, Any] = {
            "layer": name,
            "title": title,
            "hwsim": {
                "loop_nest": ours["loop_nest"],
                "operands": ours["operands"],
                "energy_pj": ours["energy_pj"],
            },
        }
        print(
            f"\n{title} on {chip.name}: hwsim places W, I, O in {homes['I2']}, "
            f"{homes['I1']}, {homes['O']}; forward loop nest: {ours['loop_nest']}"
        )
        ours_levels: dict[str, int] = {}
        for o in ours["operands"].values():
            ours_levels[o["level"]] = ours_levels.get(o["level"], 0) + o["accesses"]
        print(f"  {'':8s} {'memory energy above rf':>22s} {'accesses by level':40s} ratio")
        print(f"  {'hwsim':8s} {ours['energy_pj'] / 1e6:19.3f} µJ {json.dumps(ours_levels):40s}")
        staged_differs = any(chip.memory(h).kind == "dram" for h in homes.values())
        for variant in ("same", "staged") if staged_differs else ("same",):
            with tempfile.TemporaryDirectory(prefix="zigzag-") as tmp:
                staged = variant == "staged"
                zz = run_zigzag(
                    ours["layer"], batch, chip, homes, staged, args.psum_bits, Path(tmp)
                )
            ratio = ours["energy_pj"] / zz["energy_above_rf_pj"]
            share = zz["rf_energy_pj"] / (zz["rf_energy_pj"] + zz["energy_above_rf_pj"])
            zz.update(ratio=ratio, rf_share=share, accesses_by_level=by_level(zz, chip))
            entry[f"zigzag_{variant}"] = zz
            print(
                f"  {'zz ' + variant:8s} {zz['energy_above_rf_pj'] / 1e6:19.3f} µJ "
                f"{json.dumps(zz['accesses_by_level']):40s} {ratio:.2f}  (rf "
                f"{zz['rf_energy_pj'] / 1e6:.3f} µJ, {share:.0%} of ZigZag's memory energy; "
                f"{zz['seconds']:.1f} s)"
            )
            print(f"           {zz['mapping']}")
        report["layers"].append(entry)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
