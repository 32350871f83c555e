"""Exact SimPy timelines on a toy chip: bandwidth, latency, and BP's contention for W.

Chip data/timing_chip.yaml: the weight memory moves 8 bits per cycle on one port with no
latency; the interconnect moves 8 bits per cycle after 1 cycle of latency. Network: MLP 2-2-2
without biases (32 bits of W per layer), batch 2 with one sample per weight fetch, so the step
runs as two pipeline chunks and the error unit works on sample 0 while the forward unit
works on sample 1.
"""

from __future__ import annotations

from pathlib import Path

from hwsim.sim.api import simulate
from hwsim.sim.model_specs import build_workload

CHIP = Path(__file__).parent / "data" / "timing_chip.yaml"


def _run(rule: str):
    doc = build_workload("mlp:2-2-2", batch_size=2, optimizer="sgd")
    for layer in doc["layers"]:
        layer["bias"] = False
    return simulate(doc, CHIP, rule, timeline=True).rules[rule]


def _intervals(result, resources):
    return [
        (e.resource, e.phase, e.layer, e.start_cycle, e.end_cycle)
        for e in result.step.timeline
        if e.resource in resources
    ]


def test_bp_error_unit_contends_with_forward_unit_for_the_weight_memory():
    r = _run("bp")
    assert _intervals(r, {"wmem", "interconnect"}) == [
        # sample 0 forward: 32 bits at 8 bit/cycle = 4 cycles per layer
        ("wmem", "forward", 0, 0, 4),
        ("wmem", "forward", 1, 6, 10),
        # sample 1 forward, layer 0 (the error unit is busy with the loss until 15)
        ("wmem", "forward", 0, 12, 16),
        # BP reads W of layer 1 for sample 0: it asked at 15 and waited 1 cycle for the port
        ("wmem", "backward", 1, 16, 20),
        # ... so the forward unit's layer-1 read (asked at 18) waits until 20
        ("wmem", "forward", 1, 20, 24),
        # transport of W: 1 cycle latency + 32 / 8 cycles over the link
        ("interconnect", "backward", 1, 20, 25),
        ("wmem", "backward", 1, 28, 32),
        ("interconnect", "backward", 1, 32, 37),
        # update: read W, 1 cycle of MACs, write W; top layer first
        ("wmem", "update", 1, 44, 48),
        ("wmem", "update", 1, 49, 53),
        ("wmem", "update", 0, 53, 57),
        ("wmem", "update", 0, 58, 62),
    ]
    assert r.latency_cycles == 62
    assert r.step.stall_cycles["forward"] == 2  # the wait from 18 to 20
    assert r.step.utilization["wmem"] == 10 * 4 / 62  # 10 transfers of 4 cycles each


def test_fa_reads_its_own_feedback_memory_without_contention():
    r = _run("fa")
    assert _intervals(r, {"wmem", "fbmem", "interconnect"}) == [
        ("wmem", "forward", 0, 0, 4),
        ("wmem", "forward", 1, 6, 10),
        ("wmem", "forward", 0, 12, 16),
        ("fbmem", "backward", 1, 14, 18),  # B of layer 1, beside the error unit
        ("wmem", "forward", 1, 18, 22),  # no waiting: nobody else reads wmem
        ("fbmem", "backward", 1, 26, 30),
        ("wmem", "update", 1, 38, 42),
        ("wmem", "update", 1, 43, 47),
        ("wmem", "update", 0, 47, 51),
        ("wmem", "update", 0, 52, 56),
    ]
    assert r.latency_cycles == 56
    assert r.step.stall_cycles["forward"] == 0
    assert r.weight_transport_bits == 0
    assert r.step.phase_latency_cycles["update"] == 56 - 38


def test_phase_latencies_and_timeline_cover_the_step():
    r = _run("bp")
    ends = max(e.end_cycle for e in r.step.timeline)
    assert ends == r.latency_cycles
    assert r.step.phase_latency_cycles["forward"] == 26  # first W read at 0, last write at 26
