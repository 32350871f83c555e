"""The PyTorch side of hwsim: learning rules, quantized networks, data and training.

Quick start::

    from hwsim.models import TrainConfig, train
    result = train(TrainConfig(algo="ifa", dataset="mnist5k", epochs=5), "runs/ifa")

Rules are given as spec strings (``bp``, ``fa``, ``ifa``, ``ifa:<degrees>``, ``dfa``, ``usf``,
``brsf``, ``frsf``, ``kp``, ``kp:decay=<λ>``); any model built of ``nn.Linear``/``nn.Conv2d`` (or
brevitas ``QuantLinear``/``QuantConv2d``) can be converted with :func:`convert`, and every
analysis should run on :func:`bp_view` (true gradients). A training loop of your own must wrap
each optimizer step in :func:`feedback_step` (Kolen–Pollack updates ``B`` there)::

    with feedback_step(model, lr):
        optimizer.step()
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# Names load on first use (PEP 562): importing ``hwsim.models.config`` (validating an experiment,
# pricing a finished run) must not pay for torch and brevitas, which most of these names need.
_HOME = {
    "DATASETS": "hwsim.models.data",
    "Dataset": "hwsim.models.data",
    "DirectFeedback": "hwsim.models.feedback",
    "ErrorSlot": "hwsim.models.feedback",
    "FLOAT_BITS": "hwsim.models.feedback",
    "FeedbackConv2d": "hwsim.models.layers",
    "FeedbackLayer": "hwsim.models.layers",
    "FeedbackLinear": "hwsim.models.layers",
    "QuantFeedbackConv2d": "hwsim.models.layers",
    "QuantFeedbackLinear": "hwsim.models.layers",
    "Rule": "hwsim.core.rules",
    "RunResult": "hwsim.models.training",
    "SyntheticSpec": "hwsim.models.data",
    "TrainConfig": "hwsim.models.config",
    "alignment_angles": "hwsim.models.convert",
    "angle_deg": "hwsim.models.feedback",
    "bp_view": "hwsim.models.convert",
    "build_model": "hwsim.models.training",
    "build_network": "hwsim.models.networks",
    "capture_error": "hwsim.models.feedback",
    "cnn": "hwsim.models.networks",
    "convert": "hwsim.models.convert",
    "direct_conv2d": "hwsim.models.feedback",
    "direct_linear": "hwsim.models.feedback",
    "draw_direct_feedback": "hwsim.models.feedback",
    "draw_feedback": "hwsim.models.feedback",
    "draw_magnitudes": "hwsim.models.feedback",
    "evaluate": "hwsim.models.training",
    "feedback_conv2d": "hwsim.models.feedback",
    "feedback_layers": "hwsim.models.convert",
    "feedback_linear": "hwsim.models.feedback",
    "feedback_sigma": "hwsim.models.feedback",
    "feedback_step": "hwsim.models.convert",
    "layer_names": "hwsim.models.convert",
    "learning_rate": "hwsim.models.training",
    "load_dataset": "hwsim.models.data",
    "load_run": "hwsim.models.training",
    "mlp": "hwsim.models.networks",
    "parse_rule": "hwsim.core.rules",
    "parse_rules": "hwsim.core.rules",
    "quantize_feedback": "hwsim.models.feedback",
    "read_idx": "hwsim.models.data",
    "record_workload": "hwsim.models.workload",
    "rms": "hwsim.models.feedback",
    "train": "hwsim.models.training",
    "true_gradients": "hwsim.models.convert",
    "uniform_sign_feedback": "hwsim.models.feedback",
    "update_angles": "hwsim.models.convert",
    "weight_layers": "hwsim.models.convert",
    "weight_sign": "hwsim.models.feedback",
}

if TYPE_CHECKING:
    from hwsim.core.rules import Rule, parse_rule, parse_rules
    from hwsim.models.config import TrainConfig
    from hwsim.models.convert import (
        alignment_angles,
        bp_view,
        convert,
        feedback_layers,
        feedback_step,
        layer_names,
        true_gradients,
        update_angles,
        weight_layers,
    )
    from hwsim.models.data import DATASETS, Dataset, SyntheticSpec, load_dataset, read_idx
    from hwsim.models.feedback import (
        FLOAT_BITS,
        DirectFeedback,
        ErrorSlot,
        angle_deg,
        capture_error,
        direct_conv2d,
        direct_linear,
        draw_direct_feedback,
        draw_feedback,
        draw_magnitudes,
        feedback_conv2d,
        feedback_linear,
        feedback_sigma,
        quantize_feedback,
        rms,
        uniform_sign_feedback,
        weight_sign,
    )
    from hwsim.models.layers import (
        FeedbackConv2d,
        FeedbackLayer,
        FeedbackLinear,
        QuantFeedbackConv2d,
        QuantFeedbackLinear,
    )
    from hwsim.models.networks import build_network, cnn, mlp
    from hwsim.models.training import (
        RunResult,
        build_model,
        evaluate,
        learning_rate,
        load_run,
        train,
    )
    from hwsim.models.workload import record_workload


class _Package(types.ModuleType):
    """This package, keeping a name of ``_HOME`` for its function when a submodule of the same
    name is imported (``hwsim.models.convert`` the module would otherwise replace ``convert`` the
    function, as the import system binds each submodule on its package)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOME and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    """Import ``name`` from its module on first use (see ``_HOME``)."""
    try:
        module = _HOME[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


__all__ = [
    "DATASETS",
    "FLOAT_BITS",
    "Dataset",
    "DirectFeedback",
    "ErrorSlot",
    "FeedbackConv2d",
    "FeedbackLayer",
    "FeedbackLinear",
    "QuantFeedbackConv2d",
    "QuantFeedbackLinear",
    "Rule",
    "RunResult",
    "SyntheticSpec",
    "TrainConfig",
    "alignment_angles",
    "angle_deg",
    "bp_view",
    "build_model",
    "build_network",
    "capture_error",
    "cnn",
    "convert",
    "direct_conv2d",
    "direct_linear",
    "draw_direct_feedback",
    "draw_feedback",
    "draw_magnitudes",
    "evaluate",
    "feedback_conv2d",
    "feedback_layers",
    "feedback_linear",
    "feedback_sigma",
    "feedback_step",
    "layer_names",
    "learning_rate",
    "load_dataset",
    "load_run",
    "mlp",
    "parse_rule",
    "parse_rules",
    "quantize_feedback",
    "read_idx",
    "record_workload",
    "rms",
    "train",
    "true_gradients",
    "uniform_sign_feedback",
    "update_angles",
    "weight_layers",
    "weight_sign",
]
