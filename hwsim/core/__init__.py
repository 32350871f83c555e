"""The foundation every other layer stands on: torch-free, and imports neither side.

Errors (:mod:`~hwsim.core.errors`), rule specs (:mod:`~hwsim.core.rules`), atomic files and
JSON lines (:mod:`~hwsim.core.files`), the one statistics convention (:mod:`~hwsim.core.stats`),
numbers with units (:mod:`~hwsim.core.units`), number formats of MAC operands and their
promotion (:mod:`~hwsim.core.formats`), YAML with line numbers
(:mod:`~hwsim.core.yaml_lines`), the workload contract between training and the simulator
(:mod:`~hwsim.core.workload`), the names of the files between experiments and rendering
(:mod:`~hwsim.core.outputs`) and the files shipped inside the package
(:mod:`~hwsim.core.resources`).
"""
