"""hwsim: learning rules without weight transport, and the chips that train with them.

The package has two halves that meet at one contract, ``workload.json`` (docs/workload.md):

- ``models`` (a sibling package) trains PyTorch networks with BP, FA, IFA and soft IFA;
- ``hwsim`` simulates a chip training that network on-chip. The simulator core never imports
  torch; only the CLI orchestrates both halves.
"""

from pathlib import Path

__version__ = "0.1.0"

#: Root of the source checkout (configs/ and reports/ live beside the packages).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Shipped chip and experiment YAML files.
CONFIGS_DIR = PROJECT_ROOT / "configs"
