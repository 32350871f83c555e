"""The ``update_sparsity`` key of ``workload.json`` (docs/workload.md, "Update sparsity").

A hand-written document is read back to exactly the values it holds; each bad field is refused
naming its key; a document without the key (every workload written before it, and model
specs) reads as not measured. Torch-free, like the reader.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from hwsim.core.errors import InputError
from hwsim.core.workload import (
    UPDATE_SPARSITY_MEASURED,
    LayerUpdates,
    UpdateSparsity,
    load_workload,
    with_update_sparsity,
    workload_document,
    workload_from_dict,
)


def _layer(name: str, out: int, inp: int, fmt: str = "int8") -> dict[str, Any]:
    bits = 32 if fmt == "fp32" else int(fmt[3:])
    return {
        "name": name,
        "kind": "linear",
        "weight_shape": [out, inp],
        "bias": True,
        "input_shape": [inp],
        "output_shape": [out],
        "macs_per_sample": out * inp,
        "weight_bits": bits,
        "activation_bits": 8,
        "feedback_bits": 8,
        "error_bits": 32,
        "weight_format": fmt,
        "activation_format": "int8",
        "feedback_format": "int8",
        "error_format": "fp32",
    }


# fc1: 4 x 5 = 20 int8 weights; fc2: 2 x 4 = 8 float weights. Two epochs of 3 steps (batches:
# 5 samples of 2 → 2 full batches and 1 of 1). fc1 changed 6 weight-levels in epoch 1 (out of
# 20 x 3) and 3 in epoch 2: fractions 6/60 = 0.1 and 3/60 = 0.05; per weight 9/20 = 0.45.
# fc2 changed all 8 in every step: fraction 1, 6 changes per weight.
SPARSITY: dict[str, Any] = {
    "measured": UPDATE_SPARSITY_MEASURED,
    "batch_size": 2,
    "layers": {
        "fc1": {
            "weights": 20,
            "levels": "int8",
            "changed_fraction": [0.1, 0.05],
            "mean_level_change": [1.5, 1.0],
            "steps": [3, 3],
            "max_changes_per_weight": 2,
            "mean_changes_per_weight": 0.45,
        },
        "fc2": {
            "weights": 8,
            "levels": "fp32",
            "changed_fraction": [1.0, 1.0],
            "mean_level_change": [None, None],
            "steps": [3, 3],
            "max_changes_per_weight": 6,
            "mean_changes_per_weight": 6.0,
        },
    },
}


def _document(sparsity: Any = SPARSITY, names: tuple[str, str] = ("fc1", "fc2")) -> dict[str, Any]:
    return workload_document(
        source={"kind": "training-run", "model": "mlp", "dataset": "digits", "rule": "bp"},
        input_shape=[5],
        batch_size=2,
        train_samples=5,
        epochs=2,
        batches=[{"batch_size": 2, "count": 2}, {"batch_size": 1, "count": 1}],
        optimizer={"name": "sgd", "state_tensors_per_weight": 0},
        layers=[_layer(names[0], 4, 5), _layer(names[1], 2, 4, "fp32")],
        update_sparsity=copy.deepcopy(sparsity) if sparsity is not None else None,
    )


def test_a_good_document_reads_back_exactly(tmp_path: Path):
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(_document()))
    read = load_workload(path).update_sparsity
    assert read == UpdateSparsity(
        batch_size=2,
        layers={
            "fc1": LayerUpdates(
                weights=20,
                levels="int8",
                changed_fraction=(0.1, 0.05),
                mean_level_change=(1.5, 1.0),
                steps=(3, 3),
                max_changes_per_weight=2,
                mean_changes_per_weight=0.45,
            ),
            "fc2": LayerUpdates(
                weights=8,
                levels="fp32",
                changed_fraction=(1.0, 1.0),
                mean_level_change=(None, None),
                steps=(3, 3),
                max_changes_per_weight=6,
                mean_changes_per_weight=6.0,
            ),
        },
    )
    fc1 = read.layers["fc1"]
    assert fc1.total_steps == 6
    # (0.1·3 + 0.05·3) / 6 = 0.075
    assert fc1.run_changed_fraction == pytest.approx(0.075, rel=1e-15)


def test_run_fraction_is_weighted_by_steps_and_zero_without_steps():
    # a diverged last epoch of 1 step: (0.5·4 + 0.1·1) / 5 = 0.42, not the plain mean 0.3
    layer = LayerUpdates(10, "int8", (0.5, 0.1), (1.0, 1.0), (4, 1), 5, 2.1)
    assert layer.run_changed_fraction == pytest.approx(0.42, rel=1e-15)
    nothing = LayerUpdates(10, "int8", (0.0, 0.0), (0.0, 0.0), (0, 0), 0, 0.0)
    assert (nothing.total_steps, nothing.run_changed_fraction) == (0, 0.0)


def test_the_document_keeps_the_key_last_and_a_setter_replaces_it():
    document = _document(None)
    assert "update_sparsity" not in document
    updated = with_update_sparsity(document, SPARSITY)
    assert list(updated)[-1] == "update_sparsity" and updated == _document()
    assert with_update_sparsity(updated, None) == document


def test_an_old_document_without_the_key_is_not_measured():
    document = _document(None)
    assert workload_from_dict(document).update_sparsity is None
    assert workload_from_dict({**document, "update_sparsity": None}).update_sparsity is None
    version1 = copy.deepcopy(document)
    version1["version"] = 1
    for layer in version1["layers"]:
        for key in [k for k in layer if k.endswith("_format")]:
            del layer[key]
    assert workload_from_dict(version1).update_sparsity is None


def test_legacy_layer_names_are_renamed_in_the_sparsity_too():
    """A pre-naming training run names its layers by module path ('1', '3'); the reader gives
    them fc1, fc2, and the update_sparsity entries follow."""
    sparsity = copy.deepcopy(SPARSITY)
    sparsity["layers"] = {"1": SPARSITY["layers"]["fc1"], "3": SPARSITY["layers"]["fc2"]}
    read = workload_from_dict(_document(sparsity, names=("1", "3")))
    assert [layer.name for layer in read.layers] == ["fc1", "fc2"]
    assert read.update_sparsity is not None
    assert read.update_sparsity.layers["fc1"].weights == 20
    assert read.update_sparsity.layers["fc2"].levels == "fp32"


def _set(path: str, value: Any) -> dict[str, Any]:
    """SPARSITY with the value at dotted ``path`` replaced (``...`` deletes it)."""
    sparsity = copy.deepcopy(SPARSITY)
    *parents, last = path.split(".")
    node: Any = sparsity
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return sparsity


L1 = "layers.fc1"
BAD = [
    # (path, value, the key the error must name, words of the message)
    ("measured", "", "update_sparsity.measured", "non-empty"),
    ("measured", ..., "update_sparsity.measured", "missing"),
    ("batch_size", 0, "update_sparsity.batch_size", "≥ 1"),
    ("batch_size", True, "update_sparsity.batch_size", "integer"),
    ("layers", [], "update_sparsity.layers", "object"),
    ("extra", 1, "update_sparsity.extra", "unknown key"),
    ("layers.fc9", SPARSITY["layers"]["fc1"], "update_sparsity.layers.fc9", "not a layer"),
    ("layers.fc2", ..., "update_sparsity.layers.fc2", "missing"),
    (f"{L1}.weights", 21, f"{L1}.weights", "20 elements"),
    (f"{L1}.weights", -1, f"{L1}.weights", "≥ 1"),
    (f"{L1}.levels", "int4", f"{L1}.levels", "weight_format is int8"),
    (f"{L1}.levels", "int8x", f"{L1}.levels", "unknown number format"),
    (f"{L1}.changed_fraction", [0.1, 1.5], f"{L1}.changed_fraction[1]", "[0, 1]"),
    (f"{L1}.changed_fraction", [0.1, -0.05], f"{L1}.changed_fraction[1]", "[0, 1]"),
    (f"{L1}.changed_fraction", [0.1, "x"], f"{L1}.changed_fraction[1]", "number"),
    (f"{L1}.changed_fraction", [0.1], f"{L1}.changed_fraction", "equal lengths"),
    (f"{L1}.changed_fraction", 0.1, f"{L1}.changed_fraction", "must be a list"),
    (f"{L1}.mean_level_change", [1.5], f"{L1}.mean_level_change", "equal lengths"),
    (f"{L1}.mean_level_change", [1.5, None], f"{L1}.mean_level_change[1]", "got null"),
    (f"{L1}.mean_level_change", [0.5, 1.0], f"{L1}.mean_level_change[0]", "≥ 1"),
    (f"{L1}.mean_level_change", [1.5, 300.0], f"{L1}.mean_level_change[1]", "[0, 255]"),
    (f"{L1}.steps", [3, -1], f"{L1}.steps[1]", "≥ 0"),
    (f"{L1}.steps", [3, 1.5], f"{L1}.steps[1]", "integer"),
    (f"{L1}.steps", [3, 4], f"{L1}.steps[1]", "an epoch has 3"),
    (f"{L1}.steps", [3, 3, 3], f"{L1}.changed_fraction", "equal lengths"),
    (f"{L1}.max_changes_per_weight", 7, f"{L1}.max_changes_per_weight", "in 6 measured steps"),
    (f"{L1}.max_changes_per_weight", 2.0, f"{L1}.max_changes_per_weight", "integer"),
    (f"{L1}.max_changes_per_weight", 0, f"{L1}.mean_changes_per_weight", "exceeds"),
    (f"{L1}.mean_changes_per_weight", 0.5, f"{L1}.mean_changes_per_weight", "Σ changed"),
    (f"{L1}.mean_changes_per_weight", -0.1, f"{L1}.mean_changes_per_weight", "≥ 0"),
    (f"{L1}.typo", 1, f"{L1}.typo", "unknown key"),
    ("layers.fc2.mean_level_change", [1.0, 1.0], "layers.fc2.mean_level_change[0]", "null"),
    ("layers.fc2", [], "update_sparsity.layers.fc2", "object"),
]


@pytest.mark.parametrize(
    ("path", "value", "key", "words"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD]
)
def test_each_bad_field_is_refused_naming_its_key(path: str, value: Any, key: str, words: str):
    document = _document(None)
    document["update_sparsity"] = _set(path, value)
    with pytest.raises(InputError, match="doc: ") as caught:
        workload_from_dict(document, "doc")
    message = str(caught.value)
    assert key in message and words in message, message
    # the writer refuses what the reader refuses
    with pytest.raises(InputError):
        _document(_set(path, value))


def test_layers_must_share_their_steps_and_epochs_fit_the_run():
    fc2_steps = _set("layers.fc2.steps", [3, 2])  # consistent in itself: 5 steps, 5 changes
    fc2_steps["layers"]["fc2"].update(max_changes_per_weight=5, mean_changes_per_weight=5.0)
    with pytest.raises(InputError, match=r"layers\.fc2\.steps.*same steps"):
        workload_from_dict({**_document(None), "update_sparsity": fc2_steps}, "doc")
    document = _document(None)
    document["epochs"] = 1  # two epochs listed, a run of one
    with pytest.raises(InputError, match=r"fc1\.steps: 2 epochs listed but the run has epochs: 1"):
        workload_from_dict({**document, "update_sparsity": SPARSITY}, "doc")


def test_an_unmeasured_epoch_has_no_fraction():
    """A run resumed from a checkpoint that kept no statistics lists those epochs with 0 steps;
    they must say nothing changed and carry no weight."""
    sparsity = _set(f"{L1}.steps", [0, 3])
    sparsity["layers"]["fc2"]["steps"] = [0, 3]
    sparsity["layers"]["fc1"]["changed_fraction"] = [0.0, 0.05]
    sparsity["layers"]["fc1"]["mean_level_change"] = [0.0, 1.0]
    sparsity["layers"]["fc1"]["mean_changes_per_weight"] = 0.15  # 3 changes / 20 weights
    sparsity["layers"]["fc2"]["changed_fraction"] = [0.0, 1.0]
    sparsity["layers"]["fc2"]["max_changes_per_weight"] = 3
    sparsity["layers"]["fc2"]["mean_changes_per_weight"] = 3.0
    read = workload_from_dict(_document(sparsity)).update_sparsity
    assert read is not None and read.layers["fc1"].run_changed_fraction == pytest.approx(0.05)
    sparsity["layers"]["fc1"]["changed_fraction"] = [0.1, 0.05]
    with pytest.raises(InputError, match=r"changed_fraction\[0\]: 0.1 in an epoch of 0 steps"):
        _document(sparsity)
