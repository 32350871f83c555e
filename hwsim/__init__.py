"""hwsim: learning rules without weight transport, and the chips that train with them.

Layers, each importing only those listed before it (docs/architecture.md):

- :mod:`hwsim.core`: the torch-free foundation (errors, rule specs, files, statistics, units,
  the workload contract, shipped files);
- :mod:`hwsim.sim`: the chip simulator (chip schema, dataflow, counting, SimPy timing,
  pricing), torch-free;
- :mod:`hwsim.models`: the learning side, PyTorch; it imports only ``hwsim.core`` (its source
  is the top-level ``models/`` folder of the source tree, installed as ``hwsim.models``);
- :mod:`hwsim.experiments`: compare, sweeps, reproduce and analysis runs, the one layer that
  imports both the learning side and the simulator;
- :mod:`hwsim.render`: figures, markdown and HTML from saved results, torch-free;
- :mod:`hwsim.cli`: the ``hwsim`` command, a thin click wrapper.

``hwsim`` is the one top-level import name the distribution installs: a second one (``models``,
say) would be shadowed by any folder of that name in the working directory.
"""

__version__ = "0.1.0"
