"""The compare summary contract: ``summary.json`` of a ``hwsim compare`` run (docs/compare.md).

Written by :mod:`hwsim.experiments.compare`, read by :mod:`hwsim.render.report`; both take the
format name, version and the meaning of "weight access" from here.
"""

SUMMARY_FORMAT = "hwsim-compare"
SUMMARY_VERSION = 1
#: Tensor classes whose accesses count as "weight" reads/writes in the summary: the forward
#: weights, BP's mirror of them and the feedback weights B.
WEIGHT_TENSORS = ("weights", "weight_mirror", "feedback_weights")
