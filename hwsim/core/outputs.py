"""What the experiments write and the renderer reads: file names, format names, versions.

The two layers never import each other (docs/architecture.md); both take the names of the
files between them from here. The documents' fields are described in docs/compare.md,
docs/reproduce.md and docs/analyses.md.
"""

#: ``summary.json`` of a ``hwsim compare`` run.
SUMMARY_FILE = "summary.json"
SUMMARY_FORMAT = "hwsim-compare"
SUMMARY_VERSION = 1
#: Tensor classes whose accesses count as "weight" reads/writes in the summary: the forward
#: weights, BP's mirror of them and the feedback weights B.
WEIGHT_TENSORS = ("weights", "weight_mirror", "feedback_weights")

#: A sweep directory's aggregates (mean ± std over seeds), the one input of its figure.
SWEEP_SUMMARY_FILE = "sweep.json"

#: A reproduction directory: the saved claims and the report drawn from them, and its sweeps.
REPRODUCTION_FILE = "reproduction.json"
REPRODUCTION_MARKDOWN = "REPRODUCTION.md"
REPRODUCTION_SWEEPS_DIR = "sweeps"

#: Where ``hwsim analyze`` writes ``<analysis>.json`` (and its figure) inside a run directory.
ANALYSIS_DIR = "analysis"
