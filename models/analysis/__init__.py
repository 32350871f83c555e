"""Analyses of trained networks: curvature, loss landscape, corruption and adversarial robustness.

Everything here takes plain things, an ``nn.Module``, a loss function and data, and does not
depend on how the model was trained. Pass the *BP view* of a model (true gradients by ordinary
autograd) to every gradient-based analysis; see ``docs/analyses.md``.
"""

from hwsim.models.analysis.attacks import (
    AdversarialResult,
    GradFn,
    adversarial_accuracy,
    fgsm,
    input_gradient_fn,
    pgd,
    transfer_accuracy,
)
from hwsim.models.analysis.corruptions import (
    CORRUPTION_NAMES,
    SEVERITY_PARAMETERS,
    CorruptionResult,
    corrupt,
    corruption_accuracy,
    pixelate_sides,
)
from hwsim.models.analysis.evaluation import accuracy, predict
from hwsim.models.analysis.hessian import (
    DensityResult,
    EigenResult,
    HessianOperator,
    LinearOperator,
    MatrixOperator,
    TraceResult,
    flatten_tensors,
    get_flat_parameters,
    hutchinson_trace,
    model_device,
    set_flat_parameters,
    spectral_density,
    top_eigenvalues,
    trainable_parameters,
    true_residual,
    unflatten_like,
)
from hwsim.models.analysis.landscape import (
    SurfaceResult,
    TrajectoryResult,
    dataset_loss,
    loss_surface,
    trajectory_pca,
)

__all__ = [
    "CORRUPTION_NAMES",
    "SEVERITY_PARAMETERS",
    "AdversarialResult",
    "CorruptionResult",
    "DensityResult",
    "EigenResult",
    "GradFn",
    "HessianOperator",
    "LinearOperator",
    "MatrixOperator",
    "SurfaceResult",
    "TraceResult",
    "TrajectoryResult",
    "accuracy",
    "adversarial_accuracy",
    "corrupt",
    "corruption_accuracy",
    "dataset_loss",
    "fgsm",
    "flatten_tensors",
    "get_flat_parameters",
    "hutchinson_trace",
    "input_gradient_fn",
    "loss_surface",
    "model_device",
    "pgd",
    "pixelate_sides",
    "predict",
    "set_flat_parameters",
    "spectral_density",
    "top_eigenvalues",
    "trainable_parameters",
    "trajectory_pca",
    "transfer_accuracy",
    "true_residual",
    "unflatten_like",
]
