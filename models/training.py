"""One readable training loop, and the run directory it writes.

A run directory holds:

- ``config.yaml``: the resolved :class:`TrainConfig`;
- ``metrics.jsonl``: one JSON object per epoch (epoch 0 = before training) with ``epoch``,
  ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``, ``alignment_deg``
  ({layer: degrees, or null where undefined: DFA with a convolution above the layer}),
  ``update_angle_deg`` (every rule but BP: angle between the rule's update direction and the
  true gradient on a few fixed batches), ``lr`` and ``diverged``; layers are named ``fc1``,
  ``conv1``, … (:func:`hwsim.models.convert.layer_names`);
- ``metrics.csv`` and ``tensorboard/``: the same rows flattened (``alignment_deg/fc1``), for
  spreadsheets and TensorBoard, rewritten with ``metrics.jsonl`` (:mod:`hwsim.models.run_logs`);
- ``checkpoint.pt``: model, optimizer and progress, carrying the config that built them;
- ``workload.json``: what the chip simulator consumes (docs/workload.md), written at the start
  and again after every epoch with the update sparsity measured so far
  (:mod:`hwsim.models.update_stats`: how many stored weight levels each optimizer step changed);
- ``result.json``: written last: ``status`` (``completed`` or ``diverged``), final numbers, the
  environment and the data it trained on (dataset, train and test samples);
- ``snapshots/epoch-NNNN.pt``: the model's ``state_dict`` after every epoch (epoch 0 = init),
  for analyses over training (curvature at chosen epochs, trajectory PCA); off with
  ``TrainConfig(snapshots=False)``.

Non-finite losses end the run cleanly (``diverged``). Running again into the same directory with
the same config resumes from the last checkpoint (or returns the finished result).

A run written before layers were named ``fc1``/``conv1`` (module paths ``'2'``, ``'4'``, …) reads
with the new names (:func:`read_metrics` maps them through the run's ``workload.json``), and
resuming it rewrites ``metrics.jsonl`` and ``workload.json`` with them, so no file mixes the two.

A damaged run directory either recovers by itself or is one :class:`InputError` naming the file,
what is wrong and how to go on:

- ``metrics.jsonl`` with a torn last line (a crash mid-write): the line is dropped and the run
  continues from its checkpoint; a row the checkpoint's epoch lost is measured again on the
  checkpoint's weights (a finished run's ``result.json`` is then written again). A bad line or
  row elsewhere names ``metrics.jsonl:LINE`` (or the row).
- ``checkpoint.pt`` unreadable or not a checkpoint of this run: named, with "delete it to train
  again from the start, or pass --force" (a checkpoint alone holds the optimizer state, so no
  snapshot can replace it; training is deterministic, so starting over gives the same run).
- ``config.yaml`` (bad YAML, wrong types) and ``result.json`` (bad JSON, missing keys): named,
  with what to delete or ``--force``.
- snapshots: the checkpoint epoch's snapshot, missing or unreadable, is written again on resume
  (it holds the checkpoint's weights); older ones are read only by analyses, which name a broken
  one; stray files in ``snapshots/`` are ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from hwsim.core.errors import InputError
from hwsim.core.files import claim_out_dir, write_atomic
from hwsim.core.layer_names import legacy_layer_renames
from hwsim.core.runs import (
    RunResult,
    read_metrics,
    read_result,
    recover_hint,
    run_result,
)
from hwsim.core.workload import with_update_sparsity, workload_from_dict
from hwsim.core.yaml_lines import load_yaml_text
from hwsim.models.config import TrainConfig
from hwsim.models.convert import alignment_angles, convert, feedback_step, update_angles
from hwsim.models.data import Dataset, SyntheticSpec, load_dataset
from hwsim.models.device import resolve_device
from hwsim.models.environment import environment
from hwsim.models.networks import build_network
from hwsim.models.run_logs import open_tensorboard, write_metrics_csv
from hwsim.models.update_stats import UpdateStats
from hwsim.models.workload import record_workload

#: Version 1 throughout: ``update_stats`` was added as an optional key (a checkpoint without it
#: resumes, its epochs recorded as not measured: :meth:`UpdateStats.load_state_dict`).
CHECKPOINT_VERSION = 1
RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoint.pt", "workload.json", "result.json")
#: Offset between the weight-init seed and the feedback seed, so B is not drawn from W's stream.
FEEDBACK_SEED_OFFSET = 1_000_003
EVAL_BATCH = 1000
SNAPSHOT_DIR = "snapshots"


def snapshot_path(run_dir: str | Path, epoch: int) -> Path:
    """Where the weights after ``epoch`` of a run are kept (epoch 0 = initialization)."""
    return Path(run_dir) / SNAPSHOT_DIR / f"epoch-{epoch:04d}.pt"


def kept_epochs(run_dir: str | Path) -> list[int]:
    """Epochs whose weights a run kept in ``snapshots/``, ascending (empty with snapshots off).

    Files whose name is not ``epoch-NNNN.pt`` (a stray copy, a temporary file) are ignored.
    """
    epochs = []
    for path in (Path(run_dir) / SNAPSHOT_DIR).glob("epoch-*.pt"):
        number = path.stem.split("-", 1)[1]
        if number.isdigit():
            epochs.append(int(number))
    return sorted(epochs)


def _save_snapshot(config: TrainConfig, out: Path, epoch: int, model: nn.Module) -> None:
    if config.snapshots:
        path = snapshot_path(out, epoch)
        path.parent.mkdir(exist_ok=True)
        state = model.state_dict()
        write_atomic(path, _torch_bytes(state))


def _restore_snapshot(config: TrainConfig, out: Path, epoch: int, model: nn.Module) -> None:
    """Write the snapshot of the checkpoint's ``epoch`` again when it is missing or unreadable:
    it holds exactly the checkpoint's weights."""
    if not config.snapshots:
        return
    path = snapshot_path(out, epoch)
    try:
        if isinstance(load_checkpoint(path), dict):
            return
    except InputError:
        pass
    _save_snapshot(config, out, epoch, model)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, then restore the previous count
    (``None``: leave torch's own count).

    One thread is several times faster for these small networks on a shared 2-core CPU.
    """
    if threads is None:
        yield
        return
    if threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def learning_rate(schedule: str, base_lr: float, epoch: int, epochs: int) -> float:
    """Learning rate for 0-based ``epoch`` of ``epochs``: a pure function of its arguments.

    ``constant``; ``cosine`` from ``base_lr`` towards 0; ``step``: ×0.1 at 50% and again at 75%.
    """
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "step":
        return base_lr * 0.1 ** ((epoch >= epochs // 2) + (epoch >= (3 * epochs) // 4))
    raise InputError(f"unknown schedule {schedule!r}")


def build_model(config: TrainConfig, data: Dataset) -> nn.Module:
    """The network of ``config``, initialized from its seed and converted to its rule."""
    net = build_network(
        config.model,
        data.input_shape,
        data.num_classes,
        depth=config.depth,
        width=config.width,
        weight_bits=config.weight_bits,
        act_bits=config.act_bits,
        forward_gain=config.forward_gain,
        seed=config.seed,
    )
    return convert(
        net,
        config.algo,
        seed=config.seed + FEEDBACK_SEED_OFFSET,
        feedback_bits=config.effective_feedback_bits,
        backward_gain=config.backward_gain,
        example_input=data.x_train[:1],  # DFA learns each layer's input size from it
    )


def load_data(config: TrainConfig) -> Dataset:
    """The dataset of ``config`` (with its training-size limit)."""
    return load_dataset(
        config.dataset,
        data_dir=config.data_dir,
        train_size=config.train_size,
        data_seed=config.data_seed,
        synthetic=SyntheticSpec(),
    )


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (with momentum) or Adam over the model's parameters (feedback ``B`` is a buffer)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(y), EVAL_BATCH):
        logits = model(x[start : start + EVAL_BATCH])
        target = y[start : start + EVAL_BATCH]
        loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    return loss_sum / len(y), correct / len(y)


def epoch_order(seed: int, epoch: int, n: int) -> Tensor:
    """The sample order of ``epoch``: a pure function of seed and epoch (resume-safe)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _metrics_row(
    config: TrainConfig, model: nn.Module, data: Dataset, epoch: int, lr: float, diverged: bool
) -> dict[str, Any]:
    train_loss, train_acc = evaluate(model, data.x_train, data.y_train)
    test_loss, test_acc = evaluate(model, data.x_test, data.y_test)
    diverged = diverged or not (math.isfinite(train_loss) and math.isfinite(test_loss))
    row: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": _finite_or_none(train_loss),
        "train_accuracy": train_acc,
        "test_loss": _finite_or_none(test_loss),
        "test_accuracy": test_acc,
        "alignment_deg": {k: _finite_or_none(v) for k, v in alignment_angles(model).items()},
        "lr": lr,
        "diverged": diverged,
    }
    if config.algo != "bp" and config.update_angle_batches and not diverged:
        bs = config.batch_size
        batches = [
            (data.x_train[i * bs : (i + 1) * bs], data.y_train[i * bs : (i + 1) * bs])
            for i in range(config.update_angle_batches)
            if i * bs < len(data.y_train)
        ]
        row["update_angle_deg"] = update_angles(model, batches, nn.functional.cross_entropy)
    return row


def _recorded_workload(run: Path) -> dict[str, Any] | None:
    """The workload document a run recorded when it started (its ``workload.json`` without
    ``update_sparsity``), with a pre-naming run's layer names renamed (on resume the run's files
    are written again, with the names the rest of the run now uses); ``None`` when missing,
    unreadable or not a valid workload."""
    path = run / "workload.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict):  # measured again from the checkpoint: not read
            document.pop("update_sparsity", None)
        workload_from_dict(document, str(path))
    except (OSError, UnicodeDecodeError, ValueError, InputError):
        return None
    renames = legacy_layer_renames(document)
    if renames:
        for layer in document["layers"]:
            layer["name"] = renames[layer["name"]]
    return dict(document)


def _write_workload(
    out: Path, workload: dict[str, Any], stats: UpdateStats, config: TrainConfig
) -> None:
    """Write ``workload.json``: the run's recorded workload with the update sparsity of the
    epochs measured so far (none yet: without it)."""
    sparsity = stats.document(config.batch_size) if stats.epochs else None
    document = with_update_sparsity(workload, sparsity, str(out / "workload.json"))
    write_atomic(out / "workload.json", json.dumps(document, indent=2) + "\n")


def load_checkpoint(path: str | Path) -> Any:
    """A checkpoint or snapshot written by :func:`train`, loaded with ``weights_only=True``.

    Only tensors and plain containers are read: a run directory from someone else cannot run
    code here. Anything else is an :class:`InputError` naming the file.
    """
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise InputError(f"{path}: missing") from None
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a checkpoint hwsim can load safely ({first})") from None


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``metrics.jsonl`` and, from the same rows, ``metrics.csv`` (atomically each)."""
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
    write_metrics_csv(path.parent, rows)


def _load_config(text: str, source: str = "config.yaml") -> TrainConfig:
    return TrainConfig.from_dict(load_yaml_text(text, source), source=source)


def _check_existing(out: Path, config: TrainConfig, force: bool) -> None:
    config_path = out / "config.yaml"
    if not force and config_path.is_file():
        try:
            text = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"{config_path}: cannot read ({exc}); pass --force to start the run over"
            ) from None
        try:
            _load_config(text, str(config_path))
        except InputError as exc:
            raise InputError(
                f"{exc}; it is the config of the training run in {out}: fix it, or pass --force "
                "to start the run over (removes the run's files)"
            ) from None
    claim_out_dir(
        out,
        what="training run",
        identity_file="config.yaml",
        identity=config,
        load=_load_config,
        force=force,
    )


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    force: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    device: str | torch.device | None = "auto",
    tensorboard: bool | None = None,
) -> RunResult:
    """Train ``config`` into ``out_dir``; resume from its checkpoint when one exists.

    ``on_epoch(row)`` is called with each metrics row, ``on_step(step, steps_per_epoch)`` after
    each optimizer step (progress bars). ``device``: ``auto`` (a GPU when torch sees one),
    ``cpu`` or ``cuda[:N]``; it is not part of the run's identity (a run started on one device
    resumes on another), and ``result.json`` records the environment that finished it.
    ``tensorboard``: write TensorBoard events into ``tensorboard/`` (``None``: the
    ``HWSIM_TENSORBOARD`` environment variable, else whenever the package is installed;
    :func:`hwsim.models.run_logs.tensorboard_wanted`); not part of the run's identity, and it
    changes no number. Returns how the run ended; divergence is a result, not an exception.
    """
    dev = resolve_device(device)
    out = Path(out_dir)
    _check_existing(out, config, force)
    result_path = out / "result.json"
    if result_path.exists():
        status, last_epoch = read_result(result_path)
        rows = read_metrics(out, drop_torn_tail=True)
        if rows and rows[-1]["epoch"] >= last_epoch:
            return run_result(out, status, rows[: last_epoch + 1])
        # metrics.jsonl lost its last row(s) (a torn tail): finish the run again from its
        # checkpoint; result.json is written again from the rows.
        result_path.unlink()

    data = load_data(config)
    torch.manual_seed(config.seed)
    # Built (and every random draw made) on the CPU, then moved: a seed gives the same initial
    # weights and feedback on every device.
    model = build_model(config, data).to(dev)
    data = data.to(dev)
    optimizer = make_optimizer(config, model)
    stats = UpdateStats(model)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path, ckpt_path = out / "metrics.jsonl", out / "checkpoint.pt"

    start_epoch = 0
    if ckpt_path.exists():
        start_epoch = _resume(ckpt_path, config, model, optimizer, stats)
        # The checkpoint was read onto the CPU; whatever loading put there goes to the device
        # (a no-op for what is already there; parameters keep their identity for the optimizer).
        model.to(dev)
        _restore_snapshot(config, out, start_epoch, model)
        # A run from before the layer naming: read_metrics gives its rows the new names
        # (through its workload.json, renamed below once they are written).
        rows = read_metrics(out, missing_ok=True, drop_torn_tail=True)
        rows = rows[: start_epoch + 1]  # drop rows past the checkpoint
        if len(rows) == start_epoch and start_epoch > 0:
            # The checkpoint's epoch lost its row (a torn tail): measure it again on the
            # checkpoint's weights, leaving the random stream where the checkpoint left it.
            rng = torch.get_rng_state()
            lr = learning_rate(config.schedule, config.lr, start_epoch - 1, config.epochs)
            rows.append(_metrics_row(config, model, data, start_epoch, lr, diverged=False))
            torch.set_rng_state(rng)
        if len(rows) != start_epoch + 1:
            held = f"epochs 0..{len(rows) - 1}" if rows else "no rows"
            raise InputError(
                f"{metrics_path}: holds {held} but {ckpt_path.name} is at epoch {start_epoch}: "
                f"the metrics of epochs {len(rows)}..{start_epoch - 1} are lost; pass --force "
                "to start the run over"
            )
        workload = _recorded_workload(out)
        if workload is None:  # lost: recorded again, activation sparsity on the resumed weights
            workload = record_workload(model, config, data.x_test[:256], len(data.y_train))
    else:
        write_atomic(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        rows = [
            _metrics_row(
                config,
                model,
                data,
                0,
                learning_rate(config.schedule, config.lr, 0, config.epochs),
                diverged=False,
            )
        ]
        _save_snapshot(config, out, 0, model)
        workload = record_workload(model, config, data.x_test[:256], len(data.y_train))
        _write_workload(out, workload, stats, config)
    board = open_tensorboard(out, tensorboard)
    with contextlib.closing(board):
        _write_metrics(metrics_path, rows)
        if start_epoch:
            # after the rows: a crash in between renames a pre-naming run's layers next time;
            # written again from the checkpoint's statistics (a crash may have come between
            # the checkpoint and the workload of its epoch)
            _write_workload(out, workload, stats, config)
        for row in rows:  # a fresh log: this session's rows so far (docs: hwsim.models.run_logs)
            board.write(row)
        if on_epoch and start_epoch == 0:
            on_epoch(rows[0])

        n = len(data.y_train)
        steps = math.ceil(n / config.batch_size)
        status = "completed"
        for epoch in range(start_epoch + 1, config.epochs + 1):
            lr = learning_rate(config.schedule, config.lr, epoch - 1, config.epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.train()
            order = epoch_order(config.seed, epoch, n).to(dev)
            diverged = False
            for step, start in enumerate(range(0, n, config.batch_size)):
                idx = order[start : start + config.batch_size]
                loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
                if not math.isfinite(float(loss.detach())):
                    diverged = True
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                stats.before_step(model)
                with feedback_step(model, lr):  # Kolen-Pollack's B gets W's update here
                    optimizer.step()
                stats.after_step(model)  # after KP's update: it changes W too
                if on_step:
                    on_step(step + 1, steps)
            stats.end_epoch()  # a diverged epoch records the steps it ran
            row = _metrics_row(config, model, data, epoch, lr, diverged)
            rows.append(row)
            _write_metrics(metrics_path, rows)
            _write_workload(out, workload, stats, config)
            board.write(row)
            if on_epoch:
                on_epoch(row)
            if row["diverged"]:
                status = "diverged"
                break
            state = {
                "version": CHECKPOINT_VERSION,
                "config": config.to_dict(),
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "runtime_stats": _runtime_stats(model),
                "update_stats": stats.state_dict(),
            }
            _save_snapshot(config, out, epoch, model)
            write_atomic(ckpt_path, _torch_bytes(state))

    result = run_result(out, status, rows)
    summary = {
        "status": status,
        "epochs_completed": result.epochs_completed,
        "final_test_accuracy": result.final_test_accuracy,
        "best_test_accuracy": result.best_test_accuracy,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "environment": environment(dev),
        # What it trained on, so that a finished run can be reported without loading its data.
        "data": {
            "dataset": data.name,
            "train_samples": len(data.y_train),
            "test_samples": len(data.y_test),
        },
    }
    write_atomic(result_path, json.dumps(summary, indent=2) + "\n")
    return result


def train_job(job: tuple[Any, TrainConfig, Path, str | None, int | None]) -> RunResult:
    """One training run for a worker process: ``(key, config, run_dir, device, threads)``.

    Module level here, beside :func:`train`, so that a fork server that preloads this module
    (:class:`hwsim.experiments.executors.ProcessExecutor`) starts workers with torch and
    brevitas already imported. ``key`` is the caller's name for the run (not used here).
    """
    _, config, run_dir, device, threads = job
    with torch_threads(threads):
        return train(config, run_dir, device=device)


def _resume(
    path: Path,
    config: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    stats: UpdateStats,
) -> int:
    """Load a run's checkpoint into ``model``, ``optimizer``, the update statistics ``stats``
    and torch's random stream; returns its epoch. A damaged checkpoint is an
    :class:`InputError` naming it and how to go on. A checkpoint written before update
    statistics were kept resumes too: its epochs are recorded as not measured
    (:meth:`UpdateStats.load_state_dict`)."""
    hint = recover_hint(path, "train this run again from the start")
    try:
        ckpt = load_checkpoint(path)
    except InputError as exc:
        raise InputError(f"{exc}; {hint}") from None
    keys = ("version", "config", "epoch", "model", "optimizer", "torch_rng")
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in keys):
        raise InputError(f"{path}: not a checkpoint of `hwsim train` (expected {keys}); {hint}")
    if ckpt["version"] != CHECKPOINT_VERSION:
        raise InputError(
            f"{path}: checkpoint version {ckpt['version']!r}, expected {CHECKPOINT_VERSION}; {hint}"
        )
    epoch = ckpt["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 < epoch <= config.epochs:
        raise InputError(f"{path}: 'epoch' = {epoch!r}: expected 1..{config.epochs}; {hint}")
    if ckpt["config"] != config.to_dict():
        raise InputError(f"{path}: holds another run's config than config.yaml; {hint}")
    try:
        model.load_state_dict(ckpt["model"])
        _set_runtime_stats(model, ckpt.get("runtime_stats", {}))
        optimizer.load_state_dict(ckpt["optimizer"])
        stats.load_state_dict(ckpt.get("update_stats"), epoch)
        torch.set_rng_state(ckpt["torch_rng"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: does not fit the run's network ({first}); {hint}") from None
    return epoch


def _stats_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Brevitas' runtime-statistics scales (``QuantReLU``'s): they collect statistics for
    ``collect_stats_steps`` training steps, a state ``state_dict`` does not keep."""
    return {
        name: m
        for name, m in model.named_modules()
        if all(hasattr(m, a) for a in ("counter", "collect_stats_steps", "buffer", "value"))
    }


def _runtime_stats(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The statistics-collection state of every runtime-statistics scale, for the checkpoint.

    A state dict saved mid-collection stores the running statistic as the learned value, and
    loading it ends collection: a resumed run would then train differently from an
    uninterrupted one. Saving the counter, the running buffer and the raw value beside it lets
    resume continue exactly where the run stopped.
    """
    return {
        name: {
            "counter": int(m.counter),
            "buffer": m.buffer.detach().clone(),
            "value": m.value.detach().clone(),
        }
        for name, m in _stats_modules(model).items()
    }


def _set_runtime_stats(model: nn.Module, stats: dict[str, dict[str, Any]]) -> None:
    """Restore what :func:`_runtime_stats` saved (checkpoints without it load as before)."""
    modules = _stats_modules(model)
    for name, saved in stats.items():
        m = modules[name]
        with torch.no_grad():
            m.buffer.copy_(saved["buffer"])
            m.value.copy_(saved["value"])
        m.counter = int(saved["counter"])


#: Brevitas' runtime-statistics activation scale is left out of a state dict until the first
#: training step; a snapshot of epoch 0 (quantized run) lacks exactly these keys.
RUNTIME_SCALE_KEY = "scaling_impl.value"


def load_weights(model: nn.Module, state: dict[str, Tensor], source: str | Path) -> nn.Module:
    """Load ``state`` into ``model``; only brevitas' not-yet-initialised scales may be missing.

    A freshly built model is in that same uninitialised state, so tolerating those keys loads
    an epoch-0 snapshot exactly; any other mismatch is an :class:`InputError` naming ``source``.
    """
    loaded = model.load_state_dict(state, strict=False)
    wrong = [k for k in loaded.missing_keys if not k.endswith(RUNTIME_SCALE_KEY)]
    wrong += list(loaded.unexpected_keys)
    if wrong:
        raise InputError(f"{source} does not fit the run's network: {', '.join(wrong[:5])}")
    return model


def load_run(
    run_dir: str | Path,
    *,
    epoch: int | None = None,
    device: str | torch.device | None = "cpu",
    data_dir: str | Path | None = None,
) -> tuple[TrainConfig, nn.Module, Dataset]:
    """Rebuild a run's model, data and config: after training, or after ``epoch`` (a snapshot),
    with model and data on ``device`` (``auto``, ``cpu``, ``cuda[:N]``). ``data_dir``: where the
    dataset's files are now, when they moved since the run trained (the config returned says
    so; nothing in the run directory changes)."""
    run = Path(run_dir)
    ckpt_path = run / "checkpoint.pt"
    if not ckpt_path.exists():
        raise InputError(f"{run} holds no checkpoint.pt: not a finished training run directory")
    ckpt = load_checkpoint(ckpt_path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise InputError(f"{ckpt_path}: not a checkpoint of `hwsim train` (no 'config', 'model')")
    config = TrainConfig.from_dict(ckpt.get("config"), source=f"{ckpt_path}: 'config'")
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=str(data_dir))
    state, source = ckpt["model"], ckpt_path
    if epoch is not None:
        path = snapshot_path(run, epoch)
        if not path.exists():
            kept = kept_epochs(run)
            raise InputError(
                f"{run} has no weights for epoch {epoch} ({path}); epochs kept: "
                + (", ".join(map(str, kept)) or "none (trained with snapshots off)")
            )
        state, source = load_checkpoint(path), path
        if not isinstance(state, dict):
            raise InputError(f"{path}: not a snapshot of `hwsim train` (expected a state dict)")
    data = load_data(config)
    try:
        model = load_weights(build_model(config, data), state, source)
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{source}: does not fit the run's network ({first})") from None
    dev = resolve_device(device)
    return config, model.to(dev), data.to(dev)
