"""Experiments: the one layer that imports both the learning side and the simulator.

``compare`` trains rules and prices them on chips, ``sweeps`` and ``reproduce`` run the paper's
trainability grids, ``analysis`` runs the analyses of :mod:`hwsim.models.analysis` over run
directories. Each computes and saves data (JSON); drawing is :mod:`hwsim.render`'s job.
"""
