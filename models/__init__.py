"""The PyTorch side of hwsim: learning rules, quantized networks, data and training.

Quick start::

    from models import TrainConfig, train
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

# Names load on first use (PEP 562): importing ``models.config`` (validating an experiment, pricing
# a finished run) must not pay for torch and brevitas, which most of these names need.
_HOME = {
    "DATASETS": "models.data",
    "Dataset": "models.data",
    "DirectFeedback": "models.feedback",
    "ErrorSlot": "models.feedback",
    "FLOAT_BITS": "models.feedback",
    "FeedbackConv2d": "models.layers",
    "FeedbackLayer": "models.layers",
    "FeedbackLinear": "models.layers",
    "QuantFeedbackConv2d": "models.layers",
    "QuantFeedbackLinear": "models.layers",
    "Rule": "hwsim.core.rules",
    "RunResult": "models.training",
    "SyntheticSpec": "models.data",
    "TrainConfig": "models.config",
    "alignment_angles": "models.convert",
    "angle_deg": "models.feedback",
    "bp_view": "models.convert",
    "build_model": "models.training",
    "build_network": "models.networks",
    "capture_error": "models.feedback",
    "cnn": "models.networks",
    "convert": "models.convert",
    "direct_conv2d": "models.feedback",
    "direct_linear": "models.feedback",
    "draw_direct_feedback": "models.feedback",
    "draw_feedback": "models.feedback",
    "draw_magnitudes": "models.feedback",
    "evaluate": "models.training",
    "feedback_conv2d": "models.feedback",
    "feedback_layers": "models.convert",
    "feedback_linear": "models.feedback",
    "feedback_sigma": "models.feedback",
    "feedback_step": "models.convert",
    "learning_rate": "models.training",
    "load_dataset": "models.data",
    "load_run": "models.training",
    "mlp": "models.networks",
    "parse_rule": "hwsim.core.rules",
    "parse_rules": "hwsim.core.rules",
    "quantize_feedback": "models.feedback",
    "read_idx": "models.data",
    "record_workload": "models.workload",
    "rms": "models.feedback",
    "train": "models.training",
    "true_gradients": "models.convert",
    "uniform_sign_feedback": "models.feedback",
    "update_angles": "models.convert",
    "weight_layers": "models.convert",
    "weight_sign": "models.feedback",
}

if TYPE_CHECKING:
    from hwsim.core.rules import Rule, parse_rule, parse_rules
    from models.config import TrainConfig
    from models.convert import (
        alignment_angles,
        bp_view,
        convert,
        feedback_layers,
        feedback_step,
        true_gradients,
        update_angles,
        weight_layers,
    )
    from models.data import DATASETS, Dataset, SyntheticSpec, load_dataset, read_idx
    from models.feedback import (
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
    from models.layers import (
        FeedbackConv2d,
        FeedbackLayer,
        FeedbackLinear,
        QuantFeedbackConv2d,
        QuantFeedbackLinear,
    )
    from models.networks import build_network, cnn, mlp
    from models.training import RunResult, build_model, evaluate, learning_rate, load_run, train
    from models.workload import record_workload


class _Package(types.ModuleType):
    """This package, keeping a name of ``_HOME`` for its function when a submodule of the same
    name is imported (``models.convert`` the module would otherwise replace ``convert`` the
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
        raise AttributeError(f"module 'models' has no attribute {name!r}") from None
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
