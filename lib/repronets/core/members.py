"""R models of one architecture run as one: the building block of batched runs (many seeds or grid members trained
together, each exactly its own run).

The members are stacked with ``torch.func.stack_module_state`` and run with ``vmap(functional_call)``: one forward
and one backward for all of them, each member on its own batch. Measured on this project's 2-core CPU for one SGD
step of the τ-ResNet (batch 100, width 100, 5 blocks), per member: on the digits (64 features) 1.56 ms alone,
1.00 ms as one of 32 members with 1 thread, 0.79 ms with 2 threads; on MNIST (784 features) the step is mostly
arithmetic and batching gains little (1.57 → 1.74 ms, 1 thread). A hand-written ``bmm`` version of the same network
was within 15 % of vmap at R = 8 and 32; vmap is used because it serves every architecture unchanged.

A tensor that is a parameter in some members and a buffer in others (a τ that is trained in one run and fixed in
another) is stacked as a parameter; the members where it is a buffer are *frozen* there: :meth:`Members.restore_frozen_`
puts their values back after each optimizer step, so any element-wise optimizer (SGD with momentum or weight decay,
Adam) leaves them exactly as a sequential run would.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from . import train
from .data import shuffled_order


class Members:
    """``models``: R modules of one structure (the same names and shapes of parameters and buffers)."""

    def __init__(self, models: list[nn.Module]):
        if not models:
            raise ValueError("Members needs at least one model")
        shapes = [{k: tuple(v.shape) for k, v in _tensors(m).items()} for m in models]
        for i, s in enumerate(shapes[1:], 1):
            if s != shapes[0]:
                differ = sorted(set(s.items()) ^ set(shapes[0].items()))
                raise ValueError(f"member {i} differs from member 0 in its tensors: {differ[:4]}")
        params, buffers = stack_module_state([_as_all_parameters(m) for m in models])  # each name: one (R, ...)
        self.size = len(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        trainable = [{k for k, p in m.named_parameters() if p.requires_grad} for m in models]
        self.tensors: dict[str, torch.Tensor] = {**params, **buffers}
        # per name, the members in which it is not trained (a buffer there, or a frozen parameter)
        self.frozen: dict[str, torch.Tensor] = {}
        for name, t in self.tensors.items():
            mask = torch.tensor([name not in tr for tr in trainable])
            if mask.all():
                t.requires_grad_(False)
            elif mask.any():
                self.frozen[name] = mask
        self._frozen_values = {k: self.tensors[k].detach()[m].clone() for k, m in self.frozen.items()}

    def parameters(self) -> list[torch.Tensor]:
        """The stacked tensors trained in at least one member (for one optimizer over all members)."""
        return [t for t in self.tensors.values() if t.requires_grad]

    def __call__(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Each member's output on its own inputs ``x[r]`` (``x``: (R, batch, ...)), or on the same ``x`` for all
        with ``shared=True``: (R, batch, ...)."""

        def one(tensors, inputs):
            return functional_call(self.base, tensors, (inputs,))

        return vmap(one, in_dims=(0, None if shared else 0), randomness="different")(self.tensors, x)

    def freeze_(self, member: int, names: list[str]) -> None:
        """From now on ``names`` stay as they are in ``member`` (e.g. a pruned block's weights)."""
        for name in names:
            mask = self.frozen.get(name, torch.zeros(self.size, dtype=torch.bool)).clone()
            mask[member] = True
            self.frozen[name] = mask
            self._frozen_values[name] = self.tensors[name].detach()[mask].clone()

    @torch.no_grad()
    def restore_frozen_(self) -> None:
        """After an optimizer step: every frozen (name, member) gets its value back."""
        for name, mask in self.frozen.items():
            self.tensors[name][mask] = self._frozen_values[name]

    @torch.no_grad()
    def set_(self, name: str, member: int, value) -> None:
        """Write ``member``'s ``name``; where it is frozen in that member, the frozen value too (a projection or a
        pruned τ set to zero is then what later steps restore)."""
        self.tensors[name][member] = value
        mask = self.frozen.get(name)
        if mask is not None and mask[member]:
            self._frozen_values[name][int(mask[:member].sum())] = value

    def checkpoint_state(self) -> dict:
        """Everything that changes during training, for a checkpoint (the structure is rebuilt from the runs)."""
        return {
            "tensors": {k: v.detach().clone() for k, v in self.tensors.items()},
            "frozen": dict(self.frozen),
            "frozen_values": dict(self._frozen_values),
        }

    @torch.no_grad()
    def load_checkpoint_state(self, saved: dict) -> None:
        for name, value in saved["tensors"].items():
            self.tensors[name].copy_(value)
        self.frozen, self._frozen_values = dict(saved["frozen"]), dict(saved["frozen_values"])

    def state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s tensors by name, loadable into a module of its own structure."""
        return {k: v.detach()[member].clone() for k, v in self.tensors.items()}


def save_batch(path, identity, members: Members, optimizer, values: dict) -> None:
    """A batch's checkpoint (:func:`repronets.core.train.save_checkpoint`): what it was written for (``identity``, plain
    data), every member's tensors and frozen values, the optimizer over them and the loop's own ``values``."""
    train.save_checkpoint(
        path, {"optimizer": optimizer}, {"identity": identity, "members": members.checkpoint_state(), **values}
    )


def restore_batch(saved: dict, path, identity, members: Members, optimizer) -> dict:
    """Load a :func:`save_batch` checkpoint into ``members`` and ``optimizer``; returns it for the loop's values."""
    if saved["identity"] != identity:
        raise ValueError(f"batch checkpoint {path} was written for other runs; delete it to start over")
    members.load_checkpoint_state(saved["members"])
    train.restore_states(saved, {"optimizer": optimizer})
    return saved


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _as_all_parameters(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose floating-point buffers are parameters too and whose parameters all require grad, so
    that members where a tensor is a buffer (or frozen) and members where it is trained stack into one tensor
    (``stack_module_state`` stacks parameters and buffers apart, and refuses mixed ``requires_grad``). Which members
    train it is read from the original models."""
    clone = copy.deepcopy(model)
    for module in clone.modules():
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer is None or not buffer.is_floating_point():
                continue
            del module._buffers[name]
            module.register_parameter(name, nn.Parameter(buffer.detach().clone()))
    for p in clone.parameters():  # stack_module_state wants all or none of a name's tensors to require grad
        p.requires_grad_(True)
    return clone


class MemberTrainer:
    """:func:`repronets.core.train.fit` for R members at once, each exactly its own run: its model (built by the caller
    from its seed), its data order (``data.shuffled_order`` of ``train.epoch_seed``, as ``fit``'s loader), its loss, its
    optimizer state (one optimizer over the stacked tensors: element-wise, so per member), its history and its
    finiteness check. Subclasses change the objective and add per-step and per-epoch work (the τ paper's
    projection, tracking and pruning: :mod:`repronets.tau.grouped`).

    Plain SGD, momentum, weight decay, Adam and AdamW; no learning-rate scheduler (none of the batched experiments
    has one) and no AMP. A checkpoint (every ``checkpoint_every_s``) holds every member, so an interrupted batch
    resumes with the numbers of an uninterrupted one.
    """

    checkpoint_every_s = train.SHORT_EPOCHS_CHECKPOINT_S

    def __init__(self, models: list[nn.Module], seeds: list[int], config, names: list[str], device, identity=None):
        """``identity``: what a checkpoint must have been written for (plain data; default: the names and seeds)."""
        if config.scheduler != "none" or config.amp != "off":
            raise ValueError(f"{names[0]}: batched training has no scheduler and no AMP; train these runs apart")
        self.device = torch.device(device)
        self.members = Members([m.to(self.device) for m in models])
        self.seeds, self.config, self.names, self.size = list(seeds), config, list(names), len(models)
        self.optimizer = train.OPTIMIZERS[config.optimizer](self.members.parameters(), config)
        self.identity = identity if identity is not None else {"names": self.names, "seeds": self.seeds}
        self.epoch = self.step = 0
        self.histories = [train.History() for _ in models]

    # ---------------------------------------------------------------- hooks

    def objective(self, x: torch.Tensor, y: torch.Tensor, shared: bool = False):
        """Each member's loss (R,) and metrics {name: (R,)} on its batch; the default: :func:`train.cross_entropy`."""
        logits = self.members(x, shared=shared)
        targets = y.expand(self.size, -1) if shared else y
        ce = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        return ce.view(self.size, -1).mean(1), {"acc": (logits.argmax(2) == targets).float().mean(1)}

    def after_step(self) -> None:
        """After every optimizer step (frozen tensors already restored)."""

    def after_epoch(self) -> None:
        """After every epoch's evaluation and history row."""

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, saved: dict) -> None:
        pass

    # ---------------------------------------------------------------- the loop

    @torch.no_grad()
    def evaluate(self, split) -> list[dict]:
        """Each member's sample-weighted mean loss and metrics over ``split`` (the same samples for all)."""
        totals: dict[str, torch.Tensor] = {}
        for x, y in split.loader(self.config.eval_batch_size):
            loss, metrics = self.objective(x, y, shared=True)
            for k, v in {"loss": loss, **metrics}.items():
                totals[k] = totals.get(k, 0.0) + v.detach().float() * len(y)
        values = {k: (v / len(split)).cpu().tolist() for k, v in totals.items()}
        return [{f"test_{k}": v[r] for k, v in values.items()} for r in range(self.size)]

    def train_epoch(self, split, epoch: int) -> dict[str, torch.Tensor]:
        """One epoch of steps for every member: each step's loss and metrics, {name: (R, steps)} on the CPU."""
        orders = torch.stack([shuffled_order(len(split), train.epoch_seed(s, epoch)) for s in self.seeds])
        orders = orders.to(self.device)
        logs: list[dict] = []
        for start in range(0, len(split), self.config.batch_size):
            index = orders[:, start : start + self.config.batch_size]
            loss, metrics = self.objective(split.x[index], split.y[index])
            if self.device.type == "cpu":
                self.check_finite(loss, self.step + 1, epoch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()  # members' parameters are disjoint: each gets its own loss's gradient
            self.optimizer.step()
            self.members.restore_frozen_()
            self.step += 1
            self.after_step()
            logs.append({"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}})
        steps = train.stack_steps(logs, dim=1)
        for s in range(steps["loss"].shape[1]):  # on CUDA the check waits until here: an .item() per step stalls
            self.check_finite(steps["loss"][:, s], self.step - steps["loss"].shape[1] + s + 1, epoch)
        return steps

    def fit(self, train_data, test_data=None, checkpoint=None) -> list:
        """Train every member for ``config.epochs``; their histories, as ``train.fit`` returns one."""
        started = time.perf_counter()
        train_data = train_data.to(self.device)
        test_data = test_data.to(self.device) if test_data is not None else None
        saved = train.resume_from(checkpoint, map_location=self.device)
        if saved is not None:
            self.restore(saved, checkpoint)
            started -= self.histories[0].wall_time
        elif self.config.eval_before and test_data is not None:
            for h, row in zip(self.histories, self.evaluate(test_data)):
                h.log(h.epochs, {"epoch": 0, **row})
        clock = train.CheckpointClock(checkpoint, self.checkpoint_every_s)
        while self.epoch < self.config.epochs:
            epoch = self.epoch + 1
            epoch_started = time.perf_counter()
            steps = self.train_epoch(train_data, epoch)
            train_time = time.perf_counter() - epoch_started
            tested = self.evaluate(test_data) if test_data is not None else [{}] * self.size
            self.epoch = epoch
            for r, h in enumerate(self.histories):
                if self.config.log_steps:
                    for k, v in steps.items():
                        h.steps.setdefault(k, []).extend(v[r].tolist())
                h.wall_time = time.perf_counter() - started
                row = {"epoch": epoch, "lr": self.config.lr, "train_time": train_time}
                row |= {f"train_{k}": float(v[r].mean()) for k, v in steps.items()}
                h.log(h.epochs, {**row, **tested[r], "wall_time": h.wall_time})
            self.after_epoch()
            clock.after_epoch(self.save)
        return self.histories

    def check_finite(self, losses: torch.Tensor, step: int, epoch: int) -> None:
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            r = int(bad[0])
            value = float(losses[r].detach())
            raise train.NonFiniteLossError(
                f"run {self.names[r]!r} (member {r} of {self.size} trained together): loss is {value} at "
                f"step {step} (epoch {epoch}); lower the learning rate or check the data and the model's initialisation"
            )

    def save(self, path) -> None:
        values = {
            "epoch": self.epoch,
            "step": self.step,
            "histories": [vars(h) for h in self.histories],
            "extra": self.extra_state(),
        }
        save_batch(path, self.identity, self.members, self.optimizer, values)

    def restore(self, saved: dict, path) -> None:
        restore_batch(saved, path, self.identity, self.members, self.optimizer)
        self.load_extra_state(saved["extra"])
        self.epoch, self.step = saved["epoch"], saved["step"]
        self.histories = [train.History(**h) for h in saved["histories"]]
