"""The training loop shared by the four papers.

``fit(model, train_data, config)`` runs epochs of mini-batch steps and returns a :class:`History`
(per-step and per-epoch metrics as plain lists). What differs between papers plugs in as data or small hooks:

- ``loss_fn(model, x, y) -> (loss, metrics)``: the objective, e.g. cross-entropy plus a τ regulariser;
  it is also used for evaluation, as the τ paper's code does.
- ``callbacks``: objects with any of ``after_step(state)``, ``after_epoch(state)``; they may change
  ``state.model`` (pruning, refinement) and call ``state.rebuild_optimizer()``, or set ``state.stop``.

Checkpoints: with ``checkpoint=path`` the full state (weights, optimizer, scheduler, history, RNG states,
callback states) is written atomically after every epoch, and a later call with the same config resumes from
it. Shuffling is seeded per epoch from (seed, epoch), so a resumed run gives the same numbers, bit for bit on
the CPU, as one that was never interrupted.

Several processes (``torchrun --nproc_per_node N``, see :func:`distributed`): every rank draws the same global
batch of ``batch_size`` and takes its share (``tensor_split``, so shares differ by at most one sample); after the
backward pass the gradients are averaged over the ranks, weighted by share, in one all-reduce, so the step is the
single-process step on the global batch up to float rounding, for models without batch statistics. This is
DistributedDataParallel's arithmetic without its module wrapper: loss functions read the model's own attributes
(the τ regulariser) and callbacks replace the model (pruning, refinement), which a wrapper would hide. As with DDP
without SyncBatchNorm, BatchNorm normalises each rank's share and keeps its own running statistics (rank 0's are
checkpointed and stored), and random augmentation draws the same numbers on every rank for different samples:
such models train as with DDP, not bit-like one process. Step metrics are averaged like the gradients, evaluation
runs on every rank, only rank 0 writes checkpoints, and a last batch smaller than the number of ranks is skipped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import random
import sys
import time
import warnings
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import fileio


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the run, the step and the epoch."""


OPTIMIZER_KEYS = ("optimizer", "lr", "momentum", "weight_decay")


def optimizer_options(run: dict) -> dict:
    """The optimizer settings among a run's parameters (those of :data:`OPTIMIZER_KEYS` it has), for TrainConfig."""
    return {k: run[k] for k in OPTIMIZER_KEYS if k in run}


# The checkpoint interval of the loops whose epochs take milliseconds (SSS's full-batch protocol, grouped runs): an
# interruption loses at most this much work, instead of a checkpoint written after every epoch.
SHORT_EPOCHS_CHECKPOINT_S = 30.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    optimizer: str = "sgd"  # a name in OPTIMIZERS
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    scheduler: str = "none"  # a name in SCHEDULERS
    milestones: tuple[int, ...] = ()  # epochs at which "multistep" multiplies the lr by gamma
    gamma: float = 0.1
    eta_min: float = 0.0  # the cosine schedule's final lr
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "off"  # off | bf16 | fp16; CUDA only, ignored with a warning on the CPU
    seed: int = 0
    eval_batch_size: int = 10_000
    eval_before: bool = False  # evaluate once before training (the epoch-0 point of a curve)
    log_steps: bool = True  # keep every step's metrics in History.steps
    progress: bool | None = None  # None: bars in a terminal or an interactive notebook, not in run_all.sh
    checkpoint_every_s: float = 0.0  # at most one checkpoint per this many seconds (0: after every epoch); runs of
    # many millisecond epochs otherwise spend most of their time writing checkpoints (see SHORT_EPOCHS_CHECKPOINT_S)
    name: str = "run"  # used in progress bars and error messages

    def __post_init__(self):
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} not in {sorted(OPTIMIZERS)}")
        if self.scheduler not in SCHEDULERS:
            problems.append(f"scheduler {self.scheduler!r} not in {sorted(SCHEDULERS)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            problems.append(f"device {self.device!r} not in auto, cpu, cuda")
        if self.amp not in ("off", "bf16", "fp16"):
            problems.append(f"amp {self.amp!r} not in off, bf16, fp16")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            problems.append("epochs >= 0, batch_size >= 1 and lr > 0 are required")
        if problems:
            raise ValueError(f"run {self.name!r}: bad training config: " + "; ".join(problems))


OPTIMIZERS: dict[str, Callable] = {
    "sgd": lambda params, c: torch.optim.SGD(
        params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, nesterov=c.nesterov
    ),
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay),
}
SCHEDULERS: dict[str, Callable] = {
    "none": lambda opt, c: None,
    "multistep": lambda opt, c: torch.optim.lr_scheduler.MultiStepLR(opt, list(c.milestones), gamma=c.gamma),
    "cosine": lambda opt, c: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(c.epochs, 1), eta_min=c.eta_min),
}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available here; use device: auto or cpu")
    return torch.device(device)


def show_progress() -> bool:
    """Progress bars for a person watching: in a terminal or a notebook kernel, but not under the pipeline
    (it sets REPRONETS_HEADLESS for the kernels it starts; their logs would fill with bar updates)."""
    if os.environ.get("REPRONETS_HEADLESS"):
        return False
    return "ipykernel" in sys.modules or sys.stderr.isatty()


def distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) in a plain process; under ``torchrun`` the process group is started here on first
    use (NCCL on CUDA, gloo on the CPU) and each rank uses the GPU of its local rank."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return 0, 1
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def is_main_process() -> bool:
    """True in a plain process and on rank 0: the process that writes results and checkpoints."""
    return distributed()[0] == 0


def _average_over_ranks(tensors: list[torch.Tensor], weight: float, world: int) -> None:
    """Replace each tensor by the weighted mean over the ranks (this rank's weight ``weight``; weights sum to 1), in
    one all-reduce of a flat buffer."""
    import torch.distributed as dist

    if world == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors]) * weight
    dist.all_reduce(flat)
    for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        t.copy_(part.view_as(t))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of ``epoch`` of a run seeded ``seed``: the order does not depend on what ran before."""
    return seed * 100_003 + epoch


def cross_entropy(model, x, y):
    """The default objective: mean cross-entropy, with accuracy as a metric."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    return loss, {"acc": (logits.argmax(1) == y).float().mean()}


@dataclasses.dataclass
class History:
    steps: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    epochs: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    wall_time: float = 0.0

    def log(self, table: dict, row: dict) -> None:
        for k, v in row.items():
            table.setdefault(k, []).append(v)


@dataclasses.dataclass
class TrainState:
    model: torch.nn.Module
    config: TrainConfig
    device: torch.device
    optimizer: torch.optim.Optimizer | None = None
    scheduler: object = None
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    history: History = dataclasses.field(default_factory=History)
    stop: bool = False
    last_metrics: dict | None = None  # the metrics of the latest step, as tensors

    def rebuild_optimizer(self, keep_state: bool = False) -> None:
        """A new optimizer (and scheduler) over the current model's parameters, at the current learning rate."""
        first = self.optimizer.param_groups[0] if self.optimizer else None
        lr = first["lr"] / first.get("lr_scale", 1.0) if first else self.config.lr
        old = self.optimizer.state_dict() if (keep_state and self.optimizer) else None
        # A model may split its parameters into groups whose learning rates are scaled (e.g. a pretrained backbone
        # at 0.01× the head's rate): a method optimizer_groups() returning [{"params": [...], "lr_scale": s}, ...].
        groups = self.model.optimizer_groups() if hasattr(self.model, "optimizer_groups") else self.model.parameters()
        self.optimizer = OPTIMIZERS[self.config.optimizer](groups, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        if old is not None:
            self.optimizer.load_state_dict(old)
        sched_state = self.scheduler.state_dict() if self.scheduler is not None else None
        self.scheduler = SCHEDULERS[self.config.scheduler](self.optimizer, self.config)
        if self.scheduler is not None and sched_state is not None:
            self.scheduler.load_state_dict(sched_state)


def evaluate(model, data, loss_fn=cross_entropy, batch_size: int = 10_000, amp: str = "off") -> dict:
    """Sample-weighted means of the loss and every metric of ``loss_fn`` over ``data``."""
    was_training = model.training
    model.eval()
    totals: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for x, y in data.loader(batch_size):
            with _autocast(x.device, amp):
                loss, metrics = loss_fn(model, x, y)
            for k, v in {"loss": loss, **metrics}.items():
                totals[k] = totals.get(k, 0.0) + v.detach().float() * len(y)
    model.train(was_training)
    return {k: (v / len(data)).item() for k, v in totals.items()}


class CheckpointClock:
    """When an epoch loop writes its checkpoint: after an epoch, once ``every_s`` seconds have passed since the last
    write (0: after every epoch). ``path`` None: never. The loops of :func:`fit`,
    :class:`repronets.core.members.MemberTrainer` and SSS's grouped trainer share it."""

    def __init__(self, path: str | Path | None, every_s: float = 0.0):
        self.path = Path(path) if path else None
        self.every_s = every_s
        self._last = time.perf_counter()

    def after_epoch(self, save: Callable[[Path], None]) -> None:
        if self.path is not None and time.perf_counter() - self._last >= self.every_s:
            save(self.path)
            self._last = time.perf_counter()


def stack_steps(logs: list[dict], dim: int = 0) -> dict[str, torch.Tensor]:
    """An epoch's step metrics ({name: tensor} per step) as {name: tensor with steps along ``dim``} on the CPU: one
    transfer per epoch, not one per step."""
    return {k: torch.stack([s[k].float() for s in logs], dim=dim).cpu() for k in logs[0]} if logs else {}


def fit(
    model,
    train_data,
    config: TrainConfig,
    *,
    test_data=None,
    loss_fn=cross_entropy,
    callbacks=(),
    checkpoint: str | Path | None = None,
) -> History:
    """Train ``model`` on ``train_data`` (a :class:`repronets.core.data.Split`); see the module docstring."""
    device = _training_device(config)
    amp = config.amp if device.type == "cuda" else "off"
    if config.amp != "off" and device.type != "cuda":
        message = f"run {config.name!r}: amp={config.amp!r} needs CUDA; training in float32 on {device}"
        warnings.warn(message, stacklevel=2)
    seed_everything(config.seed)
    state = TrainState(model=model.to(device), config=config, device=device)
    state.rebuild_optimizer()
    scaler = torch.amp.GradScaler("cuda", enabled=(amp == "fp16"))
    train_data, test_data = train_data.to(device), (test_data.to(device) if test_data is not None else None)

    def test_metrics() -> dict:
        if test_data is None:
            return {}
        return _prefixed("test_", evaluate(state.model, test_data, loss_fn, config.eval_batch_size, amp))

    saved = resume_from(checkpoint, map_location=device)
    if saved is not None:
        _restore(state, scaler, callbacks, Path(checkpoint), saved)
    elif config.eval_before and test_data is not None:
        state.history.log(state.history.epochs, {"epoch": 0, **test_metrics()})
    clock = CheckpointClock(checkpoint, config.checkpoint_every_s)
    started = time.perf_counter() - state.history.wall_time
    bar = tqdm(
        total=config.epochs,
        initial=state.epoch,
        desc=config.name,
        unit="epoch",
        disable=not (show_progress() if config.progress is None else config.progress),
        leave=False,
    )
    while state.epoch < config.epochs and not state.stop:
        epoch = state.epoch + 1
        epoch_started = time.perf_counter()
        steps = _train_epoch(state, train_data, epoch, loss_fn, callbacks, scaler, amp)
        if config.log_steps:
            for k, v in steps.items():
                state.history.steps.setdefault(k, []).extend(v.tolist())
        row = {
            "epoch": epoch,
            "lr": state.optimizer.param_groups[0]["lr"],
            "train_time": time.perf_counter() - epoch_started,  # the steps only, without evaluation
            **{f"train_{k}": float(v.mean()) for k, v in steps.items()},
        }
        if state.scheduler is not None:
            state.scheduler.step()
        row.update(test_metrics())
        state.epoch = epoch
        state.history.wall_time = row["wall_time"] = time.perf_counter() - started
        state.history.log(state.history.epochs, row)
        for cb in callbacks:
            if hasattr(cb, "after_epoch"):
                cb.after_epoch(state)
        clock.after_epoch(lambda path: _save(state, scaler, callbacks, path))
        bar.update(1)
        bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k in ("train_loss", "test_loss", "test_acc")})
    bar.close()
    return state.history


def _training_device(config: TrainConfig) -> torch.device:
    """The config's device; under torchrun on CUDA, this rank's GPU."""
    device = resolve_device(config.device)
    if distributed()[1] > 1 and device.type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _train_epoch(state: TrainState, train_data, epoch: int, loss_fn, callbacks, scaler, amp: str) -> dict:
    """One epoch of optimizer steps; each step's loss and metrics, {name: (steps,)} on the CPU."""
    rank, world = distributed()
    state.model.train()
    logs: list[dict] = []
    # One generator per epoch, seeded from (seed, epoch): the order does not depend on what ran before,
    # so resuming after epoch k shuffles epoch k+1 exactly as an uninterrupted run does.
    for x, y in train_data.loader(state.config.batch_size, shuffle=True, seed=epoch_seed(state.config.seed, epoch)):
        if world > 1 and len(y) < world:  # a last batch smaller than the ranks: some share would be empty
            continue
        share = 1.0
        if world > 1:  # this rank's part of the global batch
            share = len(y.tensor_split(world)[rank]) / len(y)
            x, y = x.tensor_split(world)[rank], y.tensor_split(world)[rank]
        logs.append(_train_step(state, x, y, share, epoch, loss_fn, scaler, amp))
        for cb in callbacks:
            if hasattr(cb, "after_step"):
                cb.after_step(state)
    steps = stack_steps(logs)
    # On CUDA the finiteness check waits until here: a .item() per step would stall the GPU queue.
    bad = (~torch.isfinite(steps["loss"])).nonzero() if steps else []
    if len(bad):
        first = int(bad[0])
        raise _non_finite(state.config, state.step - len(logs) + first + 1, epoch, float(steps["loss"][first]))
    if state.device.type == "cuda":
        torch.cuda.synchronize(state.device)
    return steps


def _train_step(state: TrainState, x, y, share: float, epoch: int, loss_fn, scaler, amp: str) -> dict:
    """One optimizer step on this rank's ``share`` of a global batch; the step's metrics (tensors)."""
    world = distributed()[1]
    with _autocast(state.device, amp):
        loss, metrics = loss_fn(state.model, x, y)
    state.optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if world > 1:
        grads = [p.grad for p in state.model.parameters() if p.grad is not None]
        metrics = {k: v.detach().float().clone() for k, v in metrics.items()}
        loss = loss.detach().float().clone()
        _average_over_ranks(grads + [loss, *metrics.values()], share, world)
    if state.device.type == "cpu" and not math.isfinite(loss.item()):
        raise _non_finite(state.config, state.step + 1, epoch, loss.item())
    scaler.step(state.optimizer)
    scaler.update()
    state.step += 1
    state.last_metrics = {"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}}
    return state.last_metrics


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {prefix + k: v for k, v in metrics.items()}


def _autocast(device, amp: str):
    device = torch.device(device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def _non_finite(config, step: int, epoch: int, value: float) -> NonFiniteLossError:
    return NonFiniteLossError(
        f"run {config.name!r}: loss is {value} at step {step} (epoch {epoch}); "
        "lower the learning rate or check the data and the model's initialisation"
    )


def _config_fingerprint(config: TrainConfig) -> dict:
    # progress, name and the checkpoint interval do not change the numbers; everything else must match to resume.
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("progress", "name", "checkpoint_every_s")}


def save_checkpoint(path: str | Path, objects: dict, values: dict) -> dict:
    """The checkpoint format of every training loop here (``fit`` and JEI-DNN's exit phases): one file, written
    atomically, holding ``values`` (plain data) as they are, the state of each of ``objects`` under its name
    (modules, optimizers, schedulers, grad scalers: ``state_dict()``; a ``torch.Generator``: ``get_state()``; None
    stays None) and the global RNG states (torch, CUDA, NumPy, Python) under ``"rng"``. Flat, so a value is read as
    ``torch.load(path)["epoch"]``. Returns what was written."""
    clash = (set(objects) & set(values)) | ({"rng"} & (set(objects) | set(values)))
    if clash:
        raise ValueError(f"checkpoint {path}: names used twice: {sorted(clash)}")
    if not is_main_process():  # under torchrun every rank holds the same state: rank 0 writes it
        return {}
    saved = {
        **values,
        **{name: _state_of(obj) for name, obj in objects.items()},
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
    }
    fileio.save_torch(path, saved)
    return saved


def read_checkpoint(path: str | Path, map_location=None) -> dict:
    """A file of :func:`save_checkpoint`, as saved; :func:`restore_states` and :func:`restore_rng` apply it."""
    return torch.load(path, map_location=map_location, weights_only=False)


# What torch.load raises for a file cut short or overwritten (zip reader, unpickler); not OSError (permissions).
UNREADABLE = (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)


def resume_from(path: str | Path | None, map_location=None) -> dict | None:
    """The checkpoint to resume from, or None when there is none. A file that cannot be read (a job killed while
    writing it without the atomic write, a full disk, another program's file) is moved aside to
    ``<name>.unreadable-<time>`` with a warning naming both paths, and the run restarts from scratch: nothing in it
    could be used."""
    if not path or not Path(path).exists():
        return None
    path = Path(path)
    try:
        return read_checkpoint(path, map_location)
    except UNREADABLE as e:
        aside = path.with_name(f"{path.name}.unreadable-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
        path.rename(aside)
        warnings.warn(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e)[:200]}); moved to {aside}; "
            "this run restarts from scratch",
            stacklevel=2,
        )
        return None


def restore_states(saved: dict, objects: dict) -> None:
    """Load each object's saved state, in the order given (skipped where the object or its state is None)."""
    for name, obj in objects.items():
        state = saved[name]
        if obj is None or state is None:
            continue
        obj.set_state(state) if isinstance(obj, torch.Generator) else obj.load_state_dict(state)


def restore_rng(saved: dict) -> None:
    rng = saved["rng"]
    torch.set_rng_state(rng["torch"].cpu())
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])


def _state_of(obj):
    if obj is None:
        return None
    return obj.get_state() if isinstance(obj, torch.Generator) else obj.state_dict()


def _save(state: TrainState, scaler, callbacks, path: Path) -> None:
    objects = {"model": state.model, "optimizer": state.optimizer, "scheduler": state.scheduler, "scaler": scaler}
    values = {
        "config": _config_fingerprint(state.config),
        "epoch": state.epoch,
        "step": state.step,
        "stop": state.stop,
        "history": dataclasses.asdict(state.history),
        "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in callbacks],
    }
    save_checkpoint(path, objects, values)


def _restore(state: TrainState, scaler, callbacks, path: Path, saved: dict) -> None:
    if saved["config"] != _config_fingerprint(state.config):
        diff = {
            k: (saved["config"].get(k), v)
            for k, v in _config_fingerprint(state.config).items()
            if saved["config"].get(k) != v
        }
        raise ValueError(
            f"run {state.config.name!r}: checkpoint {path} was written with another config "
            f"(saved vs now: {diff}); delete it to start over"
        )
    for cb, cb_state in zip(callbacks, saved["callbacks"]):
        if cb_state is not None and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(cb_state, state)  # may reshape state.model (e.g. re-apply pruning) first
    restore_states(saved, {"model": state.model})
    state.rebuild_optimizer()  # over the parameters of the model as restored
    restore_states(saved, {"optimizer": state.optimizer, "scheduler": state.scheduler, "scaler": scaler})
    state.epoch, state.step, state.stop = saved["epoch"], saved["step"], saved.get("stop", False)
    state.history = History(**saved["history"])
    restore_rng(saved)
