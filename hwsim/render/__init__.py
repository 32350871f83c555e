"""Rendering: figures, markdown and HTML drawn from saved results, never computed here.

Torch-free: it reads the JSON that :mod:`hwsim.experiments` wrote (and the simulator's
constants), so a report can be redrawn on a machine without the learning side's dependencies.
"""
