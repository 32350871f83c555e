"""The PyTorch side of hwsim: learning rules, quantized networks, data and training.

Quick start::

    from models import TrainConfig, train
    result = train(TrainConfig(algo="ifa", dataset="mnist5k", epochs=5), "runs/ifa")

Rules are given as spec strings (``bp``, ``fa``, ``ifa``, ``ifa:<degrees>``); any model built of
``nn.Linear``/``nn.Conv2d`` (or brevitas ``QuantLinear``/``QuantConv2d``) can be converted with
:func:`convert`, and every analysis should run on :func:`bp_view` (true gradients).
"""

from hwsim.core.rules import Rule, parse_rule, parse_rules
from models.config import TrainConfig
from models.convert import (
    alignment_angles,
    bp_view,
    convert,
    feedback_layers,
    true_gradients,
    update_angles,
    weight_layers,
)
from models.data import DATASETS, Dataset, SyntheticSpec, load_dataset, read_idx
from models.feedback import (
    FLOAT_BITS,
    angle_deg,
    draw_feedback,
    feedback_conv2d,
    feedback_linear,
    quantize_feedback,
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

__all__ = [
    "DATASETS",
    "FLOAT_BITS",
    "Dataset",
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
    "cnn",
    "convert",
    "draw_feedback",
    "evaluate",
    "feedback_conv2d",
    "feedback_layers",
    "feedback_linear",
    "learning_rate",
    "load_dataset",
    "load_run",
    "mlp",
    "parse_rule",
    "parse_rules",
    "quantize_feedback",
    "read_idx",
    "record_workload",
    "train",
    "true_gradients",
    "update_angles",
    "weight_layers",
]
