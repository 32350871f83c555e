"""What a step moves besides its batch phases' fetches: the loss's error writes, every layer's
update (W, optimizer state, Kolen–Pollack's B, brSF's redraw), a mirror's synchronization, and
a rule's one-time init. The closed form (``hwsim.sim.counting``) counts these, the lowering
(``hwsim.sim.lowering``) turns them into tasks; ``hwsim.sim.dataflow.fetch_moves`` is the
batch phases' counterpart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.core.formats import promote
from hwsim.core.workload import Workload
from hwsim.sim.chip import Chip
from hwsim.sim.dataflow import (
    Plan,
    changed_weights,
    cim_level,
    feedback_element_bits,
    feedback_elements,
    mac_format,
    program_move,
    readout_move,
)
from hwsim.sim.loops import Run
from hwsim.sim.moves import Move


def loss_moves(workload: Workload, plan: Plan, run: Run) -> list[Move]:
    """The loss writes the top layer's output errors of a group of samples."""
    top = len(workload.layers) - 1
    layer = workload.layers[top]
    key = ("errors", top)
    bits = run.samples * layer.output_elements * layer.error_bits
    return [Move(plan.placement[key], "errors", key, "write", bits)]


def update_moves(workload: Workload, chip: Chip, plan: Plan, i: int) -> tuple[list[Move], int]:
    """One update of layer i: W += f(ΔW, state); BP's mirror (layers ≥ 1) re-synchronized.

    With ``accumulate`` ΔW is read from its store; ``fused`` computes it on the spot (the
    gradient phase's MACs) and stores none. A mirror synchronized through a level
    (``training.mirror_sync_via``) is written there and read back before the mirror is written;
    each leg crosses the interconnect.
    """
    layer, place = workload.layers[i], plan.placement
    params = layer.weight_elements + layer.bias_elements
    state = workload.optimizer_state_per_weight
    moves: list[Move] = []
    if plan.update == "accumulate":
        key = ("gradients", i)
        moves.append(Move(place[key], "gradients", key, "read", params * chip.gradient_bits))
    w = ("weights", i)
    if cim_level(chip, plan, "weights", i):
        # the old levels read out, then only the weights whose level changed reprogrammed
        moves.append(readout_move(workload, chip, plan, i, bias=True))
        moves.append(
            program_move(workload, chip, plan, "weights", i, changed_weights(plan, i, params))
        )
    else:
        for direction in ("read", "write"):
            moves.append(Move(place[w], "weights", w, direction, params * layer.weight_bits))
    if state:
        s = ("optimizer_state", i)
        sbits = params * state * chip.optimizer_state_bits
        moves += [Move(place[s], "optimizer_state", s, d, sbits) for d in ("read", "write")]
    mirrored = plan.error_weight_source == "mirror" or plan.sign_source == "mirror"
    if mirrored and i > 0:  # layer 0 has no mirror
        moves += mirror_copy_moves(workload, chip, plan, i, sync=True)
    return moves, params * (1 + state)


def feedback_update_moves(
    workload: Workload, chip: Chip, plan: Plan, i: int
) -> tuple[list[Move], int, str]:
    """Kolen–Pollack: one update of layer i ≥ 1 also lands in B (moves, MACs, MAC format).

    The update unit sends the step (``We`` elements at ``gradient_bits``) over the interconnect
    to B's memory, where B is read and written (``We · fb``) with ``We`` MACs in
    ``promote(feedback_format, gradient_format)``. The decay λ folds into the same
    read-modify-write. Nothing for other rules or layer 0.
    """
    if not plan.rule.updates_feedback or i == 0:
        return [], 0, ""
    layer = workload.layers[i]
    key = ("feedback_weights", i)
    n = layer.weight_elements
    bits = n * layer.feedback_bits
    moves = [
        Move(plan.placement[key], "feedback_weights", key, "read", bits),
        Move(plan.placement[key], "feedback_weights", key, "write", bits, n * chip.gradient_bits),
    ]
    return moves, n, promote(layer.feedback_format, chip.gradient_format)


def redraw_moves(workload: Workload, plan: Plan, i: int) -> list[Move]:
    """brSF with stored magnitudes: once per step (per batch) layer i ≥ 1 draws ``We`` new
    magnitudes (PRNG generation) and writes them. Regenerated magnitudes (``prng``) only take a
    new seed: nothing to count."""
    if not plan.rule.redraws_feedback or i == 0 or plan.error_weight_source != "feedback":
        return []
    layer = workload.layers[i]
    key = ("feedback_weights", i)
    n = layer.weight_elements
    bits = n * feedback_element_bits(layer, plan.rule)
    return [
        Move(None, "feedback_weights", None, "generate", 0, 0, n),
        Move(plan.placement[key], "feedback_weights", key, "write", bits),
    ]


@dataclass(frozen=True)
class UpdatePart:
    """One part of layer i's update work: its moves, MACs and their number format.
    ``per_update``: repeated with every update (every sample when fused), else once per step."""

    moves: list[Move]
    macs: int
    mac_format: str
    per_update: bool = True


def update_parts(workload: Workload, chip: Chip, plan: Plan, i: int) -> list[UpdatePart]:
    """Layer i's update work, in order: W's update (:func:`update_moves`), Kolen–Pollack's B
    receiving it (:func:`feedback_update_moves`), brSF's redraw (:func:`redraw_moves`, once per
    step). The closed form and the lowering both count from this."""
    moves, macs = update_moves(workload, chip, plan, i)
    parts = [UpdatePart(moves, macs, mac_format(workload, chip, plan, "update", i))]
    fb_moves, fb_macs, fb_fmt = feedback_update_moves(workload, chip, plan, i)
    if fb_moves:
        parts.append(UpdatePart(fb_moves, fb_macs, fb_fmt))
    redraw = redraw_moves(workload, plan, i)
    if redraw:
        parts.append(UpdatePart(redraw, 0, "", per_update=False))
    return parts


def sync_payload_bits(weights: int, per_weight: int, changed: int) -> int:
    """Bits that bring a mirror of ``weights`` values of ``per_weight`` bits up to date when
    ``changed`` of them changed: all of them, or the changed values each with its index
    (``⌈log₂ weights⌉`` bits), whichever is fewer. The one rule of every synchronization that
    sends only what changed: a mirror in arrays, and a digital one with ``training.mirror_sync:
    changed``. With every weight changed (nothing measured) it is all of them."""
    index_bits = max(1, (weights - 1).bit_length())
    return min(weights * per_weight, changed * (per_weight + index_bits))


def _scattered_write(chip: Chip, level: str, values: int, per_weight: int) -> tuple[int, int]:
    """(accesses, cycles) of writing ``values`` values of ``per_weight`` bits, each at its own
    place in a digital level: one masked write of each access unit (a word, a DRAM burst) the
    value lies in — no read first, the level's write mask (SRAM bit or byte enables, DRAM data
    masks) leaves the word's other values as they are. Values packed at a multiple of
    ``g = gcd(per_weight, unit)`` bits touch at most ``⌈(per_weight − g) / unit⌉ + 1`` units:
    one where a unit holds a whole number of values. Two changed values in one word are two
    writes (the sync unit writes each (index, value) pair as it arrives)."""
    memory = chip.memory(level)
    unit = memory.word_bits * memory.burst_words
    per_value = -(-(per_weight - math.gcd(per_weight, unit)) // unit) + 1
    accesses = values * per_value
    return accesses, accesses * -(-unit // memory.bandwidth_bits_per_cycle)


def _through_via(chip: Chip, tensor: str, bits: int) -> list[Move]:
    """Data crossing from one side of the chip to the other through ``training.mirror_sync_via``
    (cores that share only that level): written there over the interconnect and read back;
    nothing when the sides share the interconnect."""
    via = chip.mirror_sync_via
    if via is None:
        return []
    return [Move(via, tensor, None, "write", bits, bits), Move(via, tensor, None, "read", bits)]


def mirror_copy_moves(
    workload: Workload, chip: Chip, plan: Plan, i: int, *, sync: bool = False
) -> list[Move]:
    """Writing layer i's W into BP's mirror (or its sign into a sign-concordant rule's 1-bit
    mirror): directly, or through ``mirror_sync_via``.

    The first copy (``sync`` false) carries and writes all of W. A synchronization after an
    update sends only what changed where it can (:func:`sync_payload_bits`: all of W, or the
    changed values with their indices, whichever is fewer bits), and that payload is what
    crosses the interconnect and passes through ``mirror_sync_via``. A mirror in arrays always
    does (cell by cell, it programs only the weights whose level changed); a digital mirror
    does with ``training.mirror_sync: changed``, and then writes each changed value in place
    (:func:`_scattered_write`), else rewrites itself whole. A sign mirror counts the measured
    level changes: every sign flip is one, so it is an upper bound on the flips.
    """
    layer = workload.layers[i]
    key = ("weight_mirror", i)
    n = layer.weight_elements
    per_weight = 1 if plan.sign_source == "mirror" else layer.weight_bits
    wbits = n * per_weight
    changed = changed_weights(plan, i, n) if sync else n
    payload = sync_payload_bits(n, per_weight, changed)
    level = plan.placement[key]
    if cim_level(chip, plan, "weight_mirror", i):
        write = program_move(workload, chip, plan, "weight_mirror", i, changed, payload)
    elif chip.mirror_sync == "changed" and payload < wbits:
        accesses, cycles = _scattered_write(chip, level, changed, per_weight)
        write = Move(
            level,
            "weight_mirror",
            key,
            "write",
            changed * per_weight,
            payload,
            accesses=accesses,
            cycles=cycles,
        )
    else:
        payload = wbits
        write = Move(level, "weight_mirror", key, "write", wbits, payload)
    return [*_through_via(chip, "weight_mirror", payload), write]


def init_moves(workload: Workload, chip: Chip, plan: Plan, i: int) -> list[Move]:
    """The one-time set-up a rule needs on layer i beyond the common random init of W.

    Layer 0 needs none: it sends no error down, so it has no mirror and no B. BP (mirror mode)
    copies W into its mirror; FA and KP write B, DFA writes D_l; IFA writes B = W₀ (read W,
    carry it), or — with B in ROM or regenerated — derives W₀ from B instead. The
    sign-concordant rules in mirror mode make the first sign-mirror copy (read W, write 1 bit
    per weight); frSF writes its fixed magnitudes, brSF draws (PRNG) and writes its first ones
    (stored in sram/dram). Nothing with B in ROM or regenerated, except IFA's.

    IFA's W₀ crosses from the forward side to the error side (or, derived from B, back) as
    BP's copy of W does: through ``training.mirror_sync_via`` when the chip names one (cores
    that share only that level), else over the interconnect alone.
    """
    if i == 0:
        return []
    layer, place = workload.layers[i], plan.placement
    n = layer.weight_elements
    wbits, fbits = n * layer.weight_bits, n * layer.feedback_bits
    kind, source, storage = plan.rule.kind, plan.error_weight_source, chip.feedback_storage
    w, b = ("weights", i), ("feedback_weights", i)
    stored = storage in ("sram", "dram", "cim")
    read_w = (
        readout_move(workload, chip, plan, i)
        if cim_level(chip, plan, "weights", i)
        else Move(place[w], "weights", w, "read", wbits)
    )
    if kind == "ifa":
        if stored:
            staged = _through_via(chip, "feedback_weights", fbits)
            if cim_level(chip, plan, "feedback_weights", i):
                return [
                    read_w,
                    *staged,
                    program_move(workload, chip, plan, "feedback_weights", i, n, fbits),
                ]
            return [read_w, *staged, Move(place[b], "feedback_weights", b, "write", fbits, fbits)]
        load = (
            Move(place[b], "feedback_weights", b, "read", fbits)
            if storage == "rom"
            else Move(None, "feedback_weights", None, "generate", 0, 0, n)
        )
        staged = _through_via(chip, "weights", fbits)
        if cim_level(chip, plan, "weights", i):
            return [load, *staged, program_move(workload, chip, plan, "weights", i, n, fbits)]
        return [load, *staged, Move(place[w], "weights", w, "write", wbits, fbits)]
    moves: list[Move] = []
    if source == "mirror" or plan.sign_source == "mirror":  # BP's copy of W, or W's signs
        moves += [read_w, *mirror_copy_moves(workload, chip, plan, i)]
    if plan.rule.stores_feedback and stored:  # B, D_l or the magnitudes, written once
        if plan.rule.redraws_feedback:  # brSF: the first draw of what it redraws every batch
            moves.append(Move(None, "feedback_weights", None, "generate", 0, 0, n))
        elements = feedback_elements(workload, plan.rule, i)
        if cim_level(chip, plan, "feedback_weights", i):
            moves.append(program_move(workload, chip, plan, "feedback_weights", i, elements))
        else:
            bits = elements * feedback_element_bits(layer, plan.rule)
            moves.append(Move(place[b], "feedback_weights", b, "write", bits))
    return moves
