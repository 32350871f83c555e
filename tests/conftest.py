"""Settings every test shares."""

import os

# `hwsim compare` trains its runs in one worker process per core by default; a tiny test run
# would spend most of its time starting those processes. Tests train in-process unless they
# ask for workers (tests/learning/test_devices_and_environment.py does, and checks that the
# numbers do not change).
os.environ.setdefault("HWSIM_WORKERS", "1")
# Training writes TensorBoard events whenever the tensorboard package is installed; the tests
# run alike with and without it (tests/learning/test_run_logs.py turns it on where it checks it).
os.environ.setdefault("HWSIM_TENSORBOARD", "0")
