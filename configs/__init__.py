"""Shipped chip and experiment YAML, installed as package data ``hwsim.configs``.

Read them through :mod:`hwsim.core.resources`; copy one to edit it (``hwsim chip init``).
"""
