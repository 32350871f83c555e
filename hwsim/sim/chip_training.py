"""The ``training:`` and ``placement:`` sections of a chip: how it trains (BP's weight access,
feedback storage, loop order, update, stored formats, pinned classes) and where each tensor
class lives."""

from __future__ import annotations

from typing import Any

from hwsim.core.errors import InputError
from hwsim.core.formats import FORMATS, int_format, parse_format
from hwsim.core.yaml_lines import KeyPath
from hwsim.sim.chip_problems import Problems
from hwsim.sim.cim import CIM_TENSORS
from hwsim.sim.memories import MemoryLevel

#: Tensor classes a chip places. ``weight_mirror`` is BP's copy of W in ``mirror`` mode.
TENSORS = (
    "weights",
    "feedback_weights",
    "weight_mirror",
    "activations",
    "errors",
    "gradients",
    "optimizer_state",
)
BP_WEIGHT_ACCESS = ("transport", "mirror", "transpose")
FEEDBACK_STORAGE = ("sram", "rom", "dram", "prng", "cim")
#: ``training.loop_order``: let the planner pick per layer and phase, or force one order.
LOOP_ORDERS = ("auto", "batch_outer", "weight_outer")
#: ``training.update``: ΔW accumulated over the batch, or each sample's update applied at once.
UPDATE_MODES = ("accumulate", "fused")
#: ``training.objective``: what the mapper minimizes (``hwsim.sim.mapper``).
OBJECTIVES = ("energy", "latency", "edp")
#: ``training.mirror_sync``: a digital mirror rewritten whole after every update, or sent only
#: the weights whose stored level changed, with their indices (whichever is fewer bits).
MIRROR_SYNC = ("full", "changed")
#: Which memory kinds each stored feedback option may name.
_STORAGE_KINDS = {
    "sram": ("register_file", "sram", "global_buffer"),
    "rom": ("rom",),
    "dram": ("dram",),
    "cim": ("cim",),
}


_TRAINING_DEFAULTS: dict[str, Any] = {
    "bp_weight_access": "transport",
    "feedback_storage": "sram",
    "prng_energy_per_value_pj": 0.0,
    "prng_values_per_cycle": 64,
    "samples_per_weight_fetch": "auto",
    "gradient_bits": 32,
    "optimizer_state_bits": 32,
    "gradient_format": None,
    "optimizer_state_format": None,
    "pinned": [],
    "loop_order": "auto",
    "objective": "energy",
    "update": "accumulate",
    "mirror_sync_via": None,
    "mirror_sync": "full",
}


def parse_training(p: Problems, value: Any) -> dict[str, Any]:
    at = ("training",)
    m = p.mapping(value, at, (), tuple(_TRAINING_DEFAULTS))
    v = {**_TRAINING_DEFAULTS, **{k: m[k] for k in m if k in _TRAINING_DEFAULTS}}
    storage = p.choice(v["feedback_storage"], (*at, "feedback_storage"), FEEDBACK_STORAGE)
    if storage == "prng" and "prng_energy_per_value_pj" not in m:
        p.add((*at, "prng_energy_per_value_pj"), "required when feedback_storage is prng")
    reuse = v["samples_per_weight_fetch"]
    if reuse != "auto":
        reuse = p.integer(reuse, (*at, "samples_per_weight_fetch"))
    return {
        "bp_weight_access": p.choice(
            v["bp_weight_access"], (*at, "bp_weight_access"), BP_WEIGHT_ACCESS
        ),
        "feedback_storage": storage,
        "prng_energy_per_value_pj": p.number(
            v["prng_energy_per_value_pj"], (*at, "prng_energy_per_value_pj")
        ),
        "prng_values_per_cycle": p.integer(
            v["prng_values_per_cycle"], (*at, "prng_values_per_cycle")
        ),
        "samples_per_weight_fetch": None if reuse == "auto" else reuse,
        **_stored_format(p, m, "gradient"),
        **_stored_format(p, m, "optimizer_state"),
        "pinned": _pinned(p, v["pinned"], (*at, "pinned")),
        "loop_order": p.choice(v["loop_order"], (*at, "loop_order"), LOOP_ORDERS),
        "objective": p.choice(v["objective"], (*at, "objective"), OBJECTIVES),
        "update": p.choice(v["update"], (*at, "update"), UPDATE_MODES),
        "mirror_sync_via": v["mirror_sync_via"],
        "mirror_sync": p.choice(v["mirror_sync"], (*at, "mirror_sync"), MIRROR_SYNC),
    }


def _stored_format(p: Problems, m: dict[str, Any], tensor: str) -> dict[str, Any]:
    """``training.<tensor>_bits`` and its companion ``training.<tensor>_format``.

    Either may be given alone: bits alone mean ``int<bits>``, a format alone sets the bits;
    both must agree; neither means 32-bit ``int32``.
    """
    at = ("training",)
    bits_key, format_key = f"{tensor}_bits", f"{tensor}_format"
    bits = p.integer(m[bits_key], (*at, bits_key)) if bits_key in m else None
    name: str | None = None
    if m.get(format_key) is not None:
        try:
            fmt = parse_format(m[format_key], f"training.{format_key}")
        except InputError:
            p.add(
                (*at, format_key),
                f"unknown number format {m[format_key]!r} (expected {', '.join(FORMATS)} or "
                "int<N>)",
            )
        else:
            name = fmt.name
            if bits is not None and bits != fmt.bits:
                p.add(
                    (*at, format_key),
                    f"{name} has {fmt.bits} bits but {bits_key} is {bits}: give one, or both "
                    "agreeing",
                )
            bits = fmt.bits
    if bits is None:
        bits = _TRAINING_DEFAULTS[bits_key]
    return {bits_key: bits, format_key: name or int_format(bits)}


def _pinned(p: Problems, value: Any, at: KeyPath) -> tuple[str, ...]:
    """``training.pinned``: tensor classes placed before any other, whatever their traffic."""
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        p.add(at, f"must be a list of tensor classes ({', '.join(TENSORS)}), got {value!r}")
        return ()
    unknown = [t for t in value if t not in TENSORS]
    if unknown:
        p.add(at, f"unknown tensor class(es) {', '.join(unknown)} (expected {', '.join(TENSORS)})")
    if len(set(value)) != len(value):
        p.add(at, "lists a tensor class twice")
    return tuple(t for t in value if t in TENSORS)


def parse_placement(
    p: Problems, value: Any, memories: tuple[MemoryLevel, ...], training: dict[str, Any]
) -> dict[str, str]:
    at = ("placement",)
    storage = training["feedback_storage"]
    mirror = training["bp_weight_access"] == "mirror"
    required = ["weights", "activations", "errors", "gradients", "optimizer_state"]
    if storage != "prng":
        required.append("feedback_weights")
    if mirror:
        required.append("weight_mirror")
    m = p.mapping(value, at, tuple(required), tuple(t for t in TENSORS if t not in required))
    kinds = {level.name: level.kind for level in memories}
    placement: dict[str, str] = {}
    for tensor, level in m.items():
        if tensor == "source":
            continue
        key = (*at, tensor)
        if tensor not in TENSORS:
            continue  # already reported as unknown
        if not isinstance(level, str) or level not in kinds:
            p.add(key, f"names no memory level (have: {', '.join(kinds) or 'none'}), got {level!r}")
            continue
        placement[tensor] = level
        if kinds[level] == "cim" and tensor not in CIM_TENSORS:
            p.add(
                key,
                f"{level!r} is a cim level: it holds only {', '.join(CIM_TENSORS)} (the "
                f"tensors an in-memory product multiplies), not {tensor}",
            )
        elif tensor == "feedback_weights":
            if storage == "prng":
                p.add(key, "feedback_storage is prng: regenerated feedback has no placement")
            elif kinds[level] not in _STORAGE_KINDS[storage]:
                p.add(
                    key,
                    f"feedback_storage is {storage}, so it must name a "
                    f"{' or '.join(_STORAGE_KINDS[storage])} level, but {level!r} is a "
                    f"{kinds[level]}",
                )
        elif kinds[level] == "rom":
            p.add(key, f"{tensor} are written during training and cannot live in ROM {level!r}")
    via = training["mirror_sync_via"]
    if via is not None and (not isinstance(via, str) or via not in kinds):
        p.add(
            ("training", "mirror_sync_via"),
            f"names no memory level (have: {', '.join(kinds) or 'none'}), got {via!r}",
        )
    elif via is not None and kinds[via] == "rom":
        p.add(("training", "mirror_sync_via"), f"{via!r} is a ROM: nothing can be written there")
    elif via is not None and kinds[via] == "cim":
        p.add(("training", "mirror_sync_via"), f"{via!r} is a cim level: it stages no data")
    if training["bp_weight_access"] == "transpose" and "weights" in placement:
        level = next(m for m in memories if m.name == placement["weights"])
        if level.cim is None:
            p.add(
                ("training", "bp_weight_access"),
                f"transpose reads W's own array transposed, but placement.weights names "
                f"{level.name!r}, a {level.kind} level, not a cim level; use transport or mirror",
            )
        elif not level.cim.transpose_read:
            p.add(
                ("training", "bp_weight_access"),
                f"transpose needs memories.{level.name}.transpose_read: true (its arrays "
                "cannot be read transposed); use mirror or transport, or give the arrays row "
                "converters (transpose_read: true)",
            )
    # (a weight_mirror placement may stay in a transport chip, so users can flip the mode)
    if mirror and placement.get("weight_mirror") == placement.get("weights") is not None:
        p.add((*at, "weight_mirror"), "a mirror must live in a different memory than weights")
    return placement
