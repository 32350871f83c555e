"""No forward pass is counted below its compulsory traffic, whatever the mapper chose.

Compulsory traffic of a layer's forward pass: every weight (and bias) read once, every input
the layer uses read once, every output written once, each at the level its tensor lives in.
No mapping can move less, so a count below it is a counting bug. Checked on edge_sram for the
layers benchmarks/compare_zigzag.py compares with a published mapper: dense 784→256 and
256→256 of the default MLP at batch 64, ResNet-18's conv2 and its strided 1×1 conv13 at batch
1. Elements by hand below; every operand is 8 bits wide.
"""

from __future__ import annotations

import math

import pytest

from hwsim.core.workload import workload_from_dict
from hwsim.sim.api import simulate
from hwsim.sim.chip import load_chip
from hwsim.sim.model_specs import build_workload

CHIP = load_chip("edge_sram")
DEFAULT_MODEL = "mlp:784-256-256-256-256-256-10"

#: layer → (weights + biases, inputs used, outputs written), in elements, for the whole batch
COMPULSORY = {
    # 784×256 weights + 256 biases; 64 samples × 784 inputs; 64 × 256 outputs
    "fc1": (784 * 256 + 256, 64 * 784, 64 * 256),
    # 256×256 + 256; 64 × 256; 64 × 256
    "fc2": (256 * 256 + 256, 64 * 256, 64 * 256),
    # 64×64×3×3, no bias; one sample's 64 × 32 × 32 inputs (padding is not stored); 64 × 32 × 32
    "conv2": (64 * 64 * 9, 64 * 32 * 32, 64 * 32 * 32),
    # 256×128×1×1; stride 2 with a 1×1 kernel uses every other row and column: 128 × 8 × 8 of
    # the 128 × 16 × 16 inputs; 256 × 8 × 8 outputs
    "conv13": (256 * 128, 128 * 8 * 8, 256 * 8 * 8),
}


@pytest.fixture(scope="module")
def forward_counts():
    """Forward-phase counts of each layer: (level, tensor, direction) → AccessCount."""
    out = {}
    for spec, batch, names in (
        (DEFAULT_MODEL, 64, ("fc1", "fc2")),
        ("resnet18", 1, ("conv2", "conv13")),
    ):
        work = workload_from_dict(build_workload(spec, batch_size=batch))
        step = simulate(work, CHIP, "bp").rules["bp"].step
        for name in names:
            out[name] = {
                (level, tensor, direction): count
                for (level, tensor, phase, direction), count in step.counts_by_layer[
                    name
                ].accesses.items()
                if phase == "forward"
            }
    return out


@pytest.mark.parametrize("layer", list(COMPULSORY))
def test_forward_counts_reach_compulsory_traffic(forward_counts, layer):
    counts = forward_counts[layer]
    weights, inputs, outputs = COMPULSORY[layer]
    operands = {
        ("weights", "read"): weights * 8,
        ("activations", "read"): inputs * 8,
        ("activations", "write"): outputs * 8,
    }
    for (tensor, direction), least_bits in operands.items():
        found = [(lvl, c) for (lvl, t, d), c in counts.items() if (t, d) == (tensor, direction)]
        assert len(found) == 1, f"{layer}: {tensor} {direction} at one level, got {found}"
        ((level, count),) = found
        memory = CHIP.memory(level)
        # accesses of the level: its words in bursts
        least_accesses = math.ceil(math.ceil(least_bits / memory.word_bits) / memory.burst_words)
        assert count.bits >= least_bits, (layer, tensor, direction, level)
        assert count.accesses >= least_accesses, (layer, tensor, direction, level)
