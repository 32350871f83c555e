"""The crossbar arrays of a compute-in-memory level (``kind: cim``, docs/simulator.md
"Compute-in-memory arrays"): what they hold, their geometry, converters and programming."""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Tensor classes a compute-in-memory level may hold: the weight-like ones an MVM multiplies.
CIM_TENSORS = ("weights", "weight_mirror", "feedback_weights")


@dataclass(frozen=True)
class CimArrays:
    """The crossbar arrays of a compute-in-memory level (``kind: cim``, docs/simulator.md).

    A weight of ``b`` bits takes ``⌈b / bits_per_cell⌉`` cells in adjacent columns. A layer maps
    its inputs (plus one bias row) on rows and its outputs × cells on columns, tiled over whole
    arrays; feedback weights and BP's mirror are programmed pre-transposed, so the error pass
    on them is an ordinary activation. One activation drives every row of one array with one
    input slice of ``dac_bits`` bits and converts every column (a transposed activation drives
    the columns and converts every row).
    """

    arrays: int
    rows: int
    columns: int
    bits_per_cell: int
    mvm_energy_pj: float
    adc_energy_pj: float
    dac_energy_pj: float
    input_bits: int
    dac_bits: int
    mvm_latency_cycles: int
    write_pulses: float
    verify_energy_pj: float
    write_latency_cycles: int
    write_parallel_cells: int
    transpose_read: bool
    transpose_mvm_energy_pj: float

    @property
    def cells(self) -> int:
        """Cells of the whole level."""
        return self.arrays * self.rows * self.columns

    def cells_per_weight(self, bits: int) -> int:
        """Cells one weight of ``bits`` bits takes (bit-sliced over adjacent columns)."""
        return math.ceil(bits / self.bits_per_cell)

    def tiles(self, rows: int, columns: int) -> int:
        """Whole arrays a matrix of ``rows`` × ``columns`` cells takes."""
        return math.ceil(rows / self.rows) * math.ceil(columns / self.columns)

    def slices(self, operand_bits: int) -> int:
        """Activations per input vector: its bits (at most ``input_bits``) in slices of
        ``dac_bits``."""
        return math.ceil(min(operand_bits, self.input_bits) / self.dac_bits)

    def activation_energy_pj(self, transposed: bool = False) -> float:
        """One activation of one array: the array itself, one conversion per sensed line and
        one drive per driven line."""
        if transposed:
            return (
                self.transpose_mvm_energy_pj
                + self.rows * self.adc_energy_pj
                + self.columns * self.dac_energy_pj
            )
        return (
            self.mvm_energy_pj + self.columns * self.adc_energy_pj + self.rows * self.dac_energy_pj
        )

    def program_energy_pj(self, write_energy_pj: float) -> float:
        """Programming one cell: ``write_pulses`` pulses, each followed by a verify read."""
        return self.write_pulses * (write_energy_pj + self.verify_energy_pj)

    def program_cycles(self, cells: int) -> int:
        """Cycles to program ``cells`` cells, ``write_parallel_cells`` at a time."""
        rounds = math.ceil(cells / self.write_parallel_cells)
        return math.ceil(rounds * self.write_pulses) * self.write_latency_cycles


CIM_REQUIRED = (
    "kind",
    "technology",
    "arrays",
    "rows",
    "columns",
    "bits_per_cell",
    "mvm_energy_pj",
    "adc_energy_pj",
    "read_energy_pj",
    "write_energy_pj",
    "mvm_latency_cycles",
)
CIM_OPTIONAL = (
    "dac_energy_pj",
    "input_bits",
    "dac_bits",
    "write_pulses",
    "verify_energy_pj",
    "write_latency_cycles",
    "write_parallel_cells",
    "transpose_read",
    "transpose_mvm_energy_pj",
    "ports",
    "latency_cycles",
    "leakage_mw",
    "endurance_cycles",
    "retention_s",
    "area_mm2",
)
#: Keys a compute-in-memory level derives from its arrays (giving them is an error).
CIM_DERIVED = ("size_bytes", "word_bits", "banks", "burst_words", "bandwidth_bits_per_cycle")
