"""SimPy simulation of one training step: memories and links as resources, units as processes.

Memories are ``simpy.Resource`` s with one slot per port; the interconnect and the feedback PRNG
are one-slot resources. A transfer holds a port for ``fetches × latency_cycles +
⌈bits / bandwidth_bits_per_cycle⌉`` cycles. Three units run as processes: ``forward``,
``error`` and ``update`` (gradient and update). Work is pipelined in pieces of each phase's fetches
(:func:`simulate_step` says who waits for whom), so BP's error unit competes with the forward
unit for the weight memory while FA/IFA's reads its own feedback store, and DFA's error unit
works on every layer of a piece at once (one MAC array between them).

The simulation tallies every transfer it executes; those tallies must equal the closed form
(``hwsim.sim.counting``) exactly. Events are per task and transfer (tile granularity), never
per word.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, cast

import simpy
from simpy.core import SimTime
from simpy.events import NORMAL, EventPriority

from hwsim.core.workload import Workload
from hwsim.sim.chip import CIM_FORMAT, Chip
from hwsim.sim.counting import AccessCount, Counts, Tally
from hwsim.sim.dataflow import (
    Plan,
)
from hwsim.sim.lowering import Task, Transfer, lower_init, lower_step

LINK = "interconnect"
PRNG = "prng"

#: A SimPy process body: yields events to wait for.
_Process = Generator[simpy.Event, Any, None]


@dataclass(frozen=True)
class TimelineEvent:
    """One busy interval of a resource (memory, interconnect, prng) or a unit (its MACs)."""

    resource: str
    phase: str
    tensor: str
    layer: int
    start_cycle: int
    end_cycle: int


@dataclass(frozen=True)
class SimOutcome:
    """What a simulation measured: its own counts, and time."""

    counts: Counts
    latency_cycles: int
    phase_latency_cycles: dict[str, int]
    utilization: dict[str, float]
    stall_cycles: dict[str, int]
    events: int
    timeline: tuple[TimelineEvent, ...] | None


class _CountingEnvironment(simpy.Environment):
    """An environment that counts the events it schedules (for events/s in benchmarks)."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled = 0

    def schedule(
        self, event: simpy.Event, priority: EventPriority = NORMAL, delay: SimTime = 0
    ) -> None:
        self.scheduled += 1
        super().schedule(event, priority, delay)


class _Machine:
    def __init__(self, chip: Chip, record_timeline: bool):
        self.chip = chip
        self.env = _CountingEnvironment()
        self.resources = {m.name: simpy.Resource(self.env, m.ports) for m in chip.memories}
        self.resources[LINK] = simpy.Resource(self.env, 1)
        self.resources[PRNG] = simpy.Resource(self.env, 1)
        self.capacity = {name: r.capacity for name, r in self.resources.items()}
        self.tally = Tally()
        self.busy: dict[str, int] = defaultdict(int)
        self.stall: dict[str, int] = defaultdict(int)
        self.spans: dict[str, list[int]] = {}
        self.timeline: list[TimelineEvent] | None = [] if record_timeline else None

    def _mark(self, name: str, task: Task, tensor: str, start: int, end: int) -> None:
        self.busy[name] += end - start
        span = self.spans.setdefault(task.phase, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
        if self.timeline is not None:
            self.timeline.append(TimelineEvent(name, task.phase, tensor, task.layer, start, end))

    def _now(self) -> int:
        # Every timeout is a whole number of cycles, so SimPy's clock stays an int.
        return cast(int, self.env.now)

    def _hold(self, name: str, cycles: int, unit: str, task: Task, tensor: str) -> _Process:
        resource = self.resources[name]
        asked = self._now()
        with resource.request() as grant:
            yield grant
            self.stall[unit] += self._now() - asked
            start = self._now()
            yield self.env.timeout(cycles)
        self._mark(name, task, tensor, start, self._now())

    def move(self, unit: str, task: Task, t: Transfer) -> _Process:
        """Carry out one transfer; stores cross the link before the memory, loads after."""
        steps = []
        if t.operand:  # streamed while the array computes (the compute's time)
            pass
        elif t.level is None:
            steps.append((PRNG, math.ceil(t.generated_values / self.chip.prng_values_per_cycle)))
        else:
            level = self.chip.memory(t.level)
            if level.cim is not None:  # activations, rows read or cells programmed
                cycles = t.cycles
            else:  # a scattered write (a mirror's changed values) takes its accesses' time
                cycles = t.fetches * level.latency_cycles + (
                    t.cycles or math.ceil(t.bits / level.bandwidth_bits_per_cycle)
                )
            steps.append((t.level, cycles))
        if t.link_bits:
            link = self.chip.interconnect
            cycles = t.fetches * link.latency_cycles + math.ceil(
                t.link_bits / link.bandwidth_bits_per_cycle
            )
            steps.insert(0 if t.direction == "write" else 1, (LINK, cycles))
        for name, cycles in steps:
            yield from self._hold(name, cycles, unit, task, t.tensor)
        if t.level is None:
            self.tally.generated_values[task.phase] += t.generated_values
        else:
            key = (t.level, t.tensor, task.phase, t.direction)
            self.tally.accesses[key] += AccessCount(t.bits, t.words, t.accesses)
        if t.link_bits:
            self.tally.interconnect_bits[(t.tensor, task.phase)] += t.link_bits

    def _all(self, unit: str, task: Task, transfers: tuple[Transfer, ...]) -> _Process:
        if len(transfers) == 1:
            yield from self.move(unit, task, transfers[0])
        elif transfers:
            yield self.env.all_of([self.env.process(self.move(unit, task, t)) for t in transfers])

    def run(
        self, task: Task, macs_per_cycle: int, mac_array: simpy.Resource | None = None
    ) -> _Process:
        """Load (in parallel), compute, store (in parallel).

        ``mac_array``: tasks of one unit that run concurrently (DFA's backward) share the
        unit's one MAC array: the compute holds it, the loads and stores overlap.
        """
        unit = task.unit
        yield from self._all(unit, task, task.loads)
        if task.macs and task.operand_format == CIM_FORMAT:
            # computed in the arrays while they were busy with the activations (the load)
            self.tally.macs[(task.phase, task.operand_format)] += task.macs
        elif task.macs:
            cycles = task.compute_cycles or math.ceil(task.macs / macs_per_cycle)
            if mac_array is None:
                start = self._now()
                yield self.env.timeout(cycles)
            else:
                asked = self._now()
                with mac_array.request() as grant:
                    yield grant
                    self.stall[unit] += self._now() - asked
                    start = self._now()
                    yield self.env.timeout(cycles)
            self._mark(unit, task, "macs", start, self._now())
            self.capacity.setdefault(unit, 1)
            self.tally.macs[(task.phase, task.operand_format)] += task.macs
        yield from self._all(unit, task, task.stores)

    def outcome(self) -> SimOutcome:
        latency = int(self.env.now)
        return SimOutcome(
            counts=self.tally.freeze(),
            latency_cycles=latency,
            phase_latency_cycles={p: end - start for p, (start, end) in self.spans.items()},
            utilization={
                name: (self.busy[name] / (cap * latency) if latency else 0.0)
                for name, cap in self.capacity.items()
            },
            stall_cycles=dict(self.stall),
            events=self.env.scheduled,
            timeline=tuple(self.timeline) if self.timeline is not None else None,
        )


def _first_piece(done: list[int], need: int) -> int:
    """The first piece after which ``done`` (samples finished, rising) reaches ``need``."""
    return next(p for p, d in enumerate(done) if d >= need)


def simulate_step(
    workload: Workload, chip: Chip, plan: Plan, *, timeline: bool = False
) -> SimOutcome:
    """Simulate one training step; return its counts, latency, utilization and stalls.

    Units wait on samples, not on piece numbers: the error unit starts piece c once the forward
    unit has finished, in every layer, every sample that piece touches; a gradient task waits
    until the errors of its samples have arrived. A ``weight_outer`` walk finishes no sample
    before its last tile, so whatever depends on it waits for all of it. With a fused update
    the forward unit starts piece c only after piece c − 1's updates. Under DFA no layer's error
    waits for the layer above: after the loss, the error unit runs all backward tasks of a
    piece at once, their loads and stores overlapping and their MACs taking turns on its one
    MAC array.
    """
    machine = _Machine(chip, timeline)
    env = machine.env
    lowered = lower_step(workload, chip, plan)
    k, top = plan.pieces, len(workload.layers) - 1
    walks, loss = plan.walks, plan.loss_walk
    cover = {key: walk.coverage(k) for key, walk in walks.items()}
    loss_cover = loss.coverage(k)
    forward_finished = [min(cover[("forward", i)][c][1] for i in range(top + 1)) for c in range(k)]
    # samples of layer i's errors (written by the loss or by layer i + 1) done after piece c
    errors_finished = {
        i: [d for _, d in (loss_cover if i == top else cover[("backward", i + 1)])]
        for i in range(top + 1)
    }
    forward_done = [env.event() for _ in range(k)]
    updates_done = [env.event() for _ in range(k)]
    error_ready = {(c, i): env.event() for c in range(k) for i in range(top + 1)}
    speed = chip.macs_per_cycle
    fused = plan.update == "fused"

    def forward_unit() -> _Process:
        for c, tasks in enumerate(lowered.pieces):
            if fused and c:
                yield updates_done[c - 1]
            for task in tasks:
                if task.unit == "forward":
                    yield from machine.run(task, speed["forward"])
            forward_done[c].succeed()

    direct = plan.rule.direct
    mac_array = simpy.Resource(env, 1) if direct else None

    def error_task(c: int, task: Task) -> _Process:
        yield from machine.run(task, speed["error"], mac_array)
        # the loss (no loads) writes the top error; layer i sends one to layer i−1
        produced = task.layer if not task.loads else task.layer - 1
        error_ready[(c, produced)].succeed()

    def error_unit() -> _Process:
        for c, tasks in enumerate(lowered.pieces):
            need = max(
                [loss_cover[c][0]] + [cover[("backward", i)][c][0] for i in range(1, top + 1)]
            )
            yield forward_done[_first_piece(forward_finished, need)]
            at_once: list[simpy.Process] = []
            for task in tasks:
                if task.unit != "error":
                    continue
                if direct and task.loads:
                    # DFA: every layer's error of the piece needs only the loss's top error,
                    # so all layers' backward tasks run at once (one MAC array between them)
                    at_once.append(env.process(error_task(c, task)))
                else:
                    yield from error_task(c, task)
            if at_once:
                yield env.all_of(at_once)
            for i in range(top + 1):  # layers whose errors saw no work in this piece
                if not error_ready[(c, i)].triggered:
                    error_ready[(c, i)].succeed()

    def update_unit() -> _Process:
        for c, tasks in enumerate(lowered.pieces):
            for task in tasks:
                if task.unit == "update":
                    if task.phase == "gradient":
                        need = cover[("gradient", task.layer)][c][0]
                        ready = _first_piece(errors_finished[task.layer], need)
                        yield error_ready[(ready, task.layer)]
                    yield from machine.run(task, speed["update"])
            updates_done[c].succeed()
        for task in lowered.updates:
            yield from machine.run(task, speed["update"])

    env.process(forward_unit())
    env.process(error_unit())
    done = env.process(update_unit())
    env.run(until=done)
    return machine.outcome()


def simulate_init(workload: Workload, chip: Chip, plan: Plan) -> SimOutcome:
    """Simulate a rule's one-time init, task after task."""
    machine = _Machine(chip, record_timeline=False)

    def init_unit() -> _Process:
        for task in lower_init(workload, chip, plan):
            yield from machine.run(task, 1)

    done = machine.env.process(init_unit())
    machine.env.run(until=done)
    return machine.outcome()
