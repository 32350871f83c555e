"""``hwsim train``: placeholder module, filled in by the learning-core work."""
