"""Resuming mid-run is exact even while brevitas still collects activation statistics.

``QuantReLU``'s scale is learned from runtime statistics over its first 300 training steps; a
plain ``state_dict`` saved before then stores the running statistic as the learned value, and
loading it ends collection, so a resumed run used to train differently from an uninterrupted
one. The checkpoint now carries the collection state (found by killing compare runs at random).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hwsim.models.config import TrainConfig
from hwsim.models.training import train

# 200 samples in batches of 100: 2 steps per epoch, far inside the 300 collection steps
CONFIG = TrainConfig(
    dataset="digits",
    train_size=200,
    depth=2,
    width=16,
    epochs=2,
    batch_size=100,
    lr=0.01,
    weight_bits=8,
    act_bits=8,
)


@pytest.mark.parametrize("algo", ["bp", "fa", "brsf", "kp:decay=1"])
def test_a_run_interrupted_after_its_first_epoch_resumes_exactly(algo: str, tmp_path: Path):
    """Also brSF (its redraw stream lives in a buffer) and KP (its B changes every step)."""
    config = CONFIG.replace(algo=algo)
    assert config.quantized
    reference = tmp_path / "whole"
    train(config, reference)
    cut = tmp_path / "cut"
    seen = {"steps": 0}

    def stop_in_epoch_two(step: int, steps: int) -> None:
        seen["steps"] += 1
        if seen["steps"] == steps + 1:  # the first step of epoch 2: epoch 1 is checkpointed
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, cut, on_step=stop_in_epoch_two)
    assert not (cut / "result.json").exists()
    train(config, cut)
    whole = (reference / "metrics.jsonl").read_text()
    assert (cut / "metrics.jsonl").read_text() == whole
    # the whole state too: W, and B, brSF's magnitudes and its generator state
    whole_state = torch.load(reference / "checkpoint.pt", weights_only=True)["model"]
    resumed = torch.load(cut / "checkpoint.pt", weights_only=True)["model"]
    assert whole_state.keys() == resumed.keys()
    assert all(torch.equal(whole_state[k], resumed[k]) for k in whole_state)
