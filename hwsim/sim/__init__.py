"""The chip simulator: torch-free, usable with the learning side's dependencies absent.

Chip schema (:mod:`~hwsim.sim.chip`), workloads from model specs (:mod:`~hwsim.core.workload`),
the on-chip dataflow per rule (:mod:`~hwsim.sim.dataflow`), closed-form counts
(:mod:`~hwsim.sim.counting`), SimPy timing (:mod:`~hwsim.sim.simulation`), pricing
(:mod:`~hwsim.sim.pricing`) and the public API (:mod:`~hwsim.sim.api`)::

    from hwsim.sim import simulate
    result = simulate("runs/ifa/workload.json", "edge_sram", "bp,fa,ifa")
"""

from hwsim.sim.api import (
    InitResult,
    RuleResult,
    RunTotals,
    SimulationResult,
    StepResult,
    simulate,
    unsupported_reason,
)

__all__ = [
    "InitResult",
    "RuleResult",
    "RunTotals",
    "SimulationResult",
    "StepResult",
    "simulate",
    "unsupported_reason",
]
