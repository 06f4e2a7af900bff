"""Training of JEI-DNN and of the baselines' exits on a frozen backbone (docs/papers/jeidnn.md §2.4–2.7, §4).

Phase 0 (the backbone) uses ``train.fit`` (``BackboneTraining``: transfer learning from the official checkpoint with
the pretrained part at ``lr_scale``× the head's rate, or training from scratch). Phases 1–3 act on the exits only and
are written here: a loop over batches that alternates between the gates and the ICs every ``alternate_every`` batches
needs per-batch control that ``fit`` does not give. All of them read the backbone through :class:`Features` and run
the same epoch loop (:func:`checkpointed_epochs`: resume, epochs, schedulers, validation, best state, checkpoint).
``METHODS`` names JEI-DNN and the baselines: each one's trainer and how its exits are used at inference
(:mod:`.policies`).

Options where the original's code and the paper's intent differ (module ``experiment`` gives defaults):
- ``ic_loss``: ``code`` (faithful: the "weighted" formula mean(P·L·S/W), which with P constant equals the plain mean
  of the ICs' cross-entropies, value and gradient) or ``exit_weighted`` (the intent: mean(P·L));
- ``cost_term``: ``depth_fraction`` (faithful to the stored results: c_l = (l+1)/(G+1)) or ``original_counter`` (the
  later code: the counter's normalised cumulative cost) or ``macs`` (true multiply-adds, normalised);
- ``pos_weight``: ``exact`` (faithful: n_l counts oracle exits exactly at l) or ``positives`` (gate l's positives);
- ``val_augmentation``: validation passes during training (model selection, pos_weight) with the training
  augmentation and train-mode features (faithful) or without (corrected);
- ``frozen_features``: ``train`` (faithful: the frozen backbone stays in train mode, so DropPath and the performer's
  dropout act on its features) or ``eval`` (corrected: deterministic features, computed once and cached).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core import train
from ..core.registry import Registry
from ..core.transforms import Preprocess
from .dynamic import DynamicNet, exit_probabilities, gate_targets, oracle_exits, positive_weights
from .policies import gate_exits, target_distribution

TRANSFER_RECIPES = ("original", "held_out")


class BackboneTraining(nn.Module):
    """The backbone as ``train.fit`` sees it, with the learning-rate groups of ``recipe``. ``original`` (the
    original's transfer learning): the head at the base rate, the tokens-to-token module and the blocks at
    ``lr_scale`` × it, the class token and the final LayerNorm frozen. ``held_out``: every parameter but the head at
    ``lr_scale`` ×, the class token and the norm included."""

    def __init__(self, backbone, lr_scale: float = 1.0, recipe: str = "held_out"):
        super().__init__()
        if recipe not in TRANSFER_RECIPES:
            raise ValueError(f"transfer recipe must be one of {TRANSFER_RECIPES}, got {recipe!r}")
        self.backbone, self.lr_scale, self.recipe = backbone, lr_scale, recipe
        if recipe == "original":
            backbone.cls_token.requires_grad_(False)
            backbone.norm.requires_grad_(False)

    def forward(self, x):
        return self.backbone(x)

    def optimizer_groups(self):
        head = [p for n, p in self.backbone.named_parameters() if n.startswith("head.") and p.requires_grad]
        rest = [p for n, p in self.backbone.named_parameters() if not n.startswith("head.") and p.requires_grad]
        return [{"params": head, "lr_scale": 1.0}, {"params": rest, "lr_scale": self.lr_scale}]


class Features:
    """The normalised class token after every block, (N, G+1, E), for a split: computed once and cached when the
    frozen backbone is in eval mode without augmentation; recomputed per batch otherwise (faithful mode)."""

    def __init__(
        self,
        model: DynamicNet,
        preprocess: Preprocess,
        mode: str,
        augment: bool,
        batch_size: int = 256,
        val_augmentation: bool = False,
        cache: list | None = None,
    ):
        if mode not in ("train", "eval"):
            raise ValueError(f"frozen_features must be train or eval, got {mode!r}")
        self.model, self.preprocess, self.mode, self.augment, self.batch_size = (
            model,
            preprocess,
            mode,
            augment,
            batch_size,
        )
        self.val_augmentation = val_augmentation
        # (a split's images, their features), found by identity: the entry holds the images, so they stay alive and
        # no other tensor can take their place (an id() key can be reused once its tensor is freed). ``cache``: a
        # list shared with other Features of the same frozen backbone and preprocessing (the exit runs of one
        # backbone, experiment.train_exits), so that they compute a split's evaluation features once.
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] = [] if cache is None else cache

    @torch.no_grad()
    def _compute(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        self._set_training(training and self.mode == "train")
        out = self.model.class_tokens(self.preprocess(x, training and self.augment))
        self._set_training(False)
        return out

    def _set_training(self, flag: bool) -> None:
        """``backbone.train(flag)``: what ``nn.Module.train`` does to modules that do not override it (none here),
        without its recursion and ``nn.Module.__setattr__``'s checks, twice per batch over T2T-ViT-7's ~130 modules.
        Measured on one quick-profile JEI-DNN run (1 thread): 20.9 s with ``train()``, 19.5 s with this."""
        if not hasattr(self, "_backbone_modules"):
            self._backbone_modules = list(self.model.backbone.modules())
        for module in self._backbone_modules:
            module.__dict__["training"] = flag

    def evaluation(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a whole split for evaluation (eval mode, no augmentation), cached."""
        for images, features in self._cache:
            if images is x:
                return features
        features = torch.cat(
            [self._compute(x[i : i + self.batch_size], False) for i in range(0, len(x), self.batch_size)]
        )
        self._cache.append((x, features))
        return features

    def validation(self, x: torch.Tensor) -> torch.Tensor:
        """Features for the validation passes during training: as :meth:`evaluation`, or, with ``val_augmentation``
        (the original: its validation images come from the augmented training set), as training batches are."""
        if not self.val_augmentation:
            return self.evaluation(x)
        return torch.cat([self._compute(x[i : i + self.batch_size], True) for i in range(0, len(x), self.batch_size)])

    def training_batch(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if self.mode == "eval" and not self.augment:
            return self.evaluation(x)[index]
        return self._compute(x[index], True)


@dataclasses.dataclass
class ExitTask:
    """What every exit trainer reads: the frozen backbone's features (a :class:`Features`), the training part's and
    the validation part's images and labels, and the exits' cost weights c_l (G+1,) of JEI-DNN's oracle."""

    feats: Features
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    costs: torch.Tensor | None = None


@dataclasses.dataclass
class ExitConfig:
    """The settings of the exit-training phases (``experiment.exit_config`` fills them from the notebook's Params)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    eta_min: float  # the cosine schedules' final learning rate
    max_warmup_epochs: int
    warmup_patience: int  # warm-up: epochs without a validation gain before an IC is frozen
    warmup_end: str  # a name in WARMUP_ENDS
    joint_epochs: str  # a name in JOINT_EPOCHS
    exit_schedule: str  # a name in EXIT_SCHEDULES
    alternate_every: int  # batches per gate / IC phase
    tradeoff: float  # λ, ce_ic_tradeoff
    ic_loss: str  # a name in IC_LOSSES
    pos_weight: str  # a name in dynamic.POSITIVE_COUNTS
    reweight: float  # BoostNet: r in F_s = o_s + r·F_{s−1}
    meta_every: int  # L2W-DEN: batches between meta-steps
    meta_p: float  # L2W-DEN: the meta-objective's target distribution ∝ p^l
    meta_lr: float  # L2W-DEN: Adam on the weight net
    meta_weight_decay: float
    meta_hidden: int  # L2W-DEN: the weight net's hidden width
    meta_weight_spread: float  # L2W-DEN: weights 1 + spread·(w − batch mean)
    seed: int


def epoch_batches(feats: Features, x: torch.Tensor, batch_size: int, generator: torch.Generator):
    """One epoch of training batches, (index, features), in an order drawn from ``generator``."""
    for index in torch.randperm(len(x), generator=generator).split(batch_size):
        yield index, feats.training_batch(x, index)


class EpochCheckpoint:
    """Per-epoch checkpoints of the exit-training phases, in the format of :func:`repronets.core.train.save_checkpoint`:
    an interrupted run resumes after its last finished epoch with the numbers of an uninterrupted one. Saved: the
    phase's name, its modules, optimizers, schedulers and generators, its plain values (best states, histories,
    counters) and the global RNGs (dropout on the frozen features and the augmentation draw from them). ``path``
    None: nothing is saved."""

    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self.saved = train.resume_from(self.path)

    @property
    def stage(self) -> str | None:
        return self.saved["stage"] if self.saved else None

    def restore(self, stage: str, objects: dict) -> dict | None:
        """The saved values of ``stage``, its objects' states loaded and the RNGs restored; None if not saved."""
        if self.stage != stage:
            return None
        train.restore_states(self.saved, objects)
        train.restore_rng(self.saved)
        return self.saved["values"]

    def save(self, stage: str, objects: dict, values: dict) -> None:
        if self.path is not None:
            self.saved = train.save_checkpoint(self.path, objects, {"stage": stage, "values": values})


def checkpointed_epochs(
    ckpt: EpochCheckpoint,
    stage: str,
    objects: dict,
    values: dict,
    epochs: int,
    train_epoch: Callable[[dict], None],
    validate: Callable[[dict, int], tuple[float | None, dict]],
    *,
    schedulers=(),
    keep: dict[str, nn.Module] | None = None,
    stop: Callable[[dict], bool] | None = None,
) -> dict:
    """The epoch loop of every exit-training phase. ``values`` (plain data, at least ``epoch`` and ``history``) are
    replaced by the checkpoint's when ``stage`` resumes, with ``objects`` (modules, optimizers, schedulers,
    generators) restored. Then per epoch: ``train_epoch(values)`` (its batches), the ``schedulers``' step,
    ``validate(values, epoch)`` → (score, history row); with ``keep`` (named modules), their state at the best score
    so far is ``values["best"]`` = (score, states); a checkpoint. ``stop(values)`` true before an epoch ends the
    loop. At the end the best state of ``keep`` is loaded back. Returns the values."""
    if keep is not None:
        values["best"] = (-1.0, _states(keep))
    values = ckpt.restore(stage, objects) or values
    for epoch in range(values["epoch"], epochs):
        if stop is not None and stop(values):
            break
        train_epoch(values)
        for s in schedulers:
            s.step()
        score, row = validate(values, epoch)
        values["history"].append(row)
        if keep is not None and score > values["best"][0]:
            values["best"] = (score, _states(keep))
        values["epoch"] = epoch + 1
        ckpt.save(stage, objects, values)
    if keep is not None:
        for name, module in keep.items():
            module.load_state_dict(values["best"][1][name])
    return values


def _states(modules: dict[str, nn.Module]) -> dict:
    return copy.deepcopy({name: m.state_dict() for name, m in modules.items()})


def exit_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of every exit, (B, G+1)."""
    B, E, C = logits.shape
    return F.cross_entropy(logits.reshape(B * E, C), y.repeat_interleave(E), reduction="none").view(B, E)


IC_LOSSES: Registry = Registry("IC loss")  # name -> loss(ce, P) over the G ICs, ce and P (B, G)


@IC_LOSSES.register("code")
def _code_ic_loss(ce: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    S = ce.sum(1, keepdim=True)
    W = (P * ce).sum(1, keepdim=True)
    return (P * ce * S / W).mean()


@IC_LOSSES.register("exit_weighted")
def _exit_weighted_ic_loss(ce: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    return (P * ce).mean()


def ic_loss(ce: torch.Tensor, P: torch.Tensor, mode: str) -> torch.Tensor:
    """The IC objective over the G ICs: ce, P (B, G). ``code``: the original's formula mean(P·L·S/W), S = Σ_l L_l,
    W = Σ_l P_l·L_l (P constant), which equals mean(L) exactly; ``exit_weighted``: mean(P·L), the intended weighting."""
    return IC_LOSSES.create(mode, ce, P)


def warmup_weights(G: int) -> torch.Tensor:
    """The warm-up loss weights of the G ICs: G+1, G, …, 2 (7 … 2 for T2T-ViT-7)."""
    return torch.arange(G + 1, 1, -1, dtype=torch.float32)


# The departures of the joint phase from the original's train_dynn.py, each an option (the first value is the
# original's and the default; docs/papers/jeidnn.md §2.5):
# - ``warmup_end``: ``restore_best`` (the original: an IC still training when the warm-up ends gets its best
#   validation weights back, as a frozen one did) or ``keep_last`` (it keeps its last weights);
# - ``joint_epochs``: ``after_warmup`` (the original: num_epoch − the warm-up epochs actually run, more when the
#   warm-up stops early) or ``fixed`` (num_epoch − max_warmup_epochs whatever the warm-up did);
# - ``exit_schedule``: ``original`` (CosineAnnealingLR(T_max = num_epoch, eta_min) built before the warm-up and
#   stepped once per joint epoch, so it stops part-way down the cosine) or ``remaining`` (T_max = the joint epochs:
#   it decays to eta_min at the last).
WARMUP_ENDS = ("restore_best", "keep_last")
JOINT_EPOCHS = ("after_warmup", "fixed")
EXIT_SCHEDULES = ("original", "remaining")


def _sgd(params, c: ExitConfig):
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


def _cosine(optimizer, epochs: int, c: ExitConfig):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=c.eta_min)


def _accuracies(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == y[:, None]).float().mean(0)


def _step(optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def warm_up_ics(
    model: DynamicNet, task: ExitTask, c: ExitConfig, epochs: int, ckpt: EpochCheckpoint | None = None
) -> dict:
    """IC warm-up: loss Σ_l (G+1−l)·CE(IC_l); an IC whose validation accuracy has not improved for
    ``warmup_patience`` epochs gets its best weights back and is frozen; stops when all are frozen or after
    ``epochs``; then every IC is trainable again. Returns the history."""
    ckpt = ckpt or EpochCheckpoint()
    G = len(model.ics)
    weights = warmup_weights(G).to(task.train_x.device)
    optimizer = _sgd(model.ics.parameters(), c)
    generator = torch.Generator().manual_seed(c.seed)
    objects = {"ics": model.ics, "optimizer": optimizer, "generator": generator}
    start = {
        "best": [(-1.0, copy.deepcopy(ic.state_dict())) for ic in model.ics],
        "stale": [0] * G,
        "frozen": [False] * G,
        "epoch": 0,
        "history": [],
    }

    def train_epoch(v: dict) -> None:
        for ic, frozen in zip(model.ics, v["frozen"]):
            ic.requires_grad_(not frozen)
        for index, f in epoch_batches(task.feats, task.train_x, c.batch_size, generator):
            logits = torch.stack([ic(f[:, l]) for l, ic in enumerate(model.ics)], 1)
            ce = exit_losses(logits, task.train_y[index])
            _step(optimizer, (ce * weights).sum(1).mean())

    def validate(v: dict, epoch: int) -> tuple[None, dict]:
        with torch.no_grad():
            acc = _accuracies(model.exit_logits(task.feats.validation(task.val_x))[:, :G], task.val_y)
        row = {"phase": "warmup", "epoch": epoch + 1, **{f"val_acc{l}": float(a) for l, a in enumerate(acc)}}
        best, stale, frozen = v["best"], v["stale"], v["frozen"]
        for l, ic in enumerate(model.ics):
            if frozen[l]:
                continue
            if acc[l] > best[l][0]:
                best[l], stale[l] = (float(acc[l]), copy.deepcopy(ic.state_dict())), 0
            else:
                stale[l] += 1
                if stale[l] >= c.warmup_patience:
                    ic.load_state_dict(best[l][1])
                    ic.requires_grad_(False)
                    frozen[l] = True
        return None, row

    values = checkpointed_epochs(
        ckpt, "warmup", objects, start, epochs, train_epoch, validate, stop=lambda v: all(v["frozen"])
    )
    if c.warmup_end == "restore_best":
        for l, ic in enumerate(model.ics):
            if not values["frozen"][l] and values["best"][l][0] >= 0:
                ic.load_state_dict(values["best"][l][1])
    model.ics.requires_grad_(True)
    return {"history": values["history"]}


def train_jeidnn(model: DynamicNet, task: ExitTask, c: ExitConfig, checkpoint=None) -> dict:
    """Phases 1–3 of JEI-DNN: ICs and gates trained on the frozen backbone; the state with the best validation gated
    accuracy (after the warm-up) is kept. Returns the history. With ``checkpoint`` (a path) it resumes."""
    ckpt = EpochCheckpoint(checkpoint)
    torch.manual_seed(c.seed)
    G = len(model.ics)
    device = task.train_x.device
    costs = task.costs.to(device)
    warm = min(c.max_warmup_epochs, c.epochs)
    if ckpt.stage == "joint":  # resumed: the warm-up's rows are in the saved history
        history = [row for row in ckpt.saved["values"]["history"] if row["phase"] == "warmup"]
    else:
        history = warm_up_ics(model, task, c, warm, ckpt)["history"]
    warmed = len(history)  # the warm-up epochs actually run
    ic_opt, gate_opt = _sgd(model.ics.parameters(), c), _sgd(model.gates.parameters(), c)
    remaining = max(c.epochs - (warmed if c.joint_epochs == "after_warmup" else warm), 1)
    schedulers = [_cosine(o, c.epochs if c.exit_schedule == "original" else remaining, c) for o in (ic_opt, gate_opt)]
    generator = torch.Generator().manual_seed(c.seed + 1)
    objects = {
        "ics": model.ics,
        "gates": model.gates,
        "ic_opt": ic_opt,
        "gate_opt": gate_opt,
        "ic_schedule": schedulers[0],
        "gate_schedule": schedulers[1],
        "generator": generator,
    }

    def train_epoch(v: dict) -> None:
        pos_weight = v["pos_weight"].to(device)
        for b, (index, f) in enumerate(epoch_batches(task.feats, task.train_x, c.batch_size, generator)):
            y = task.train_y[index]
            if (b // c.alternate_every) % 2 == 0:  # gate phase first, as the original
                with torch.no_grad():
                    logits = model.exit_logits(f)
                    target = gate_targets(oracle_exits(exit_losses(logits, y), costs, c.tradeoff), G)
                loss = F.binary_cross_entropy_with_logits(model.gate_logits(logits), target, pos_weight=pos_weight)
                opt, idle = gate_opt, ic_opt
            else:
                logits = model.exit_logits(f)
                with torch.no_grad():
                    P = exit_probabilities(model.gate_values(logits), model.exit_rule)
                loss = ic_loss(exit_losses(logits, y)[:, :G], P, c.ic_loss)
                opt, idle = ic_opt, gate_opt
            idle.zero_grad(set_to_none=True)
            _step(opt, loss)

    def validate(v: dict, epoch: int) -> tuple[float, dict]:
        with torch.no_grad():
            logits = model.exit_logits(task.feats.validation(task.val_x))
            exits = gate_exits(model, logits)
            gated = logits[torch.arange(len(task.val_y)), exits]
            acc = float((gated.argmax(1) == task.val_y).float().mean())
            oracle = oracle_exits(exit_losses(logits, task.val_y), costs, c.tradeoff)
            v["pos_weight"] = positive_weights(oracle, G, c.pos_weight).cpu()  # the next epoch's
        row = {
            "phase": "joint",
            "epoch": warmed + epoch + 1,
            "val_gated_acc": acc,
            "val_mean_exit": float(exits.float().mean()),
            "lr": ic_opt.param_groups[0]["lr"],  # the next epoch's
        }
        return acc, row

    start = {"pos_weight": torch.ones(G), "epoch": 0, "history": history}
    values = checkpointed_epochs(
        ckpt,
        "joint",
        objects,
        start,
        remaining,
        train_epoch,
        validate,
        schedulers=schedulers,
        keep={"ics": model.ics, "gates": model.gates},
    )
    return {"history": values["history"], "best_val_gated_acc": values["best"][0]}


def boosted_logits(logits: torch.Tensor, reweight: float, detach: bool = False) -> torch.Tensor:
    """F_s = o_s + r·F_{s−1} for every exit (training: the previous ensemble detached inside each stage's input)."""
    out = [logits[:, 0]]
    for s in range(1, logits.shape[1]):
        prev = out[-1].detach() if detach else out[-1]
        out.append(logits[:, s] + reweight * prev)
    return torch.stack(out, 1)


def train_boosted(model: DynamicNet, task: ExitTask, c: ExitConfig, checkpoint=None) -> dict:
    """BoostNet-style ICs: stage s is trained on CE(o_s + r·stopgrad(F_{s−1})), F_s = o_s + r·F_{s−1}, so training
    matches the ensemble used at inference; the last stage is the frozen head. Selected on the validation accuracy
    of the last ensemble."""
    ckpt = EpochCheckpoint(checkpoint)
    torch.manual_seed(c.seed)
    optimizer = _sgd(model.ics.parameters(), c)
    scheduler = _cosine(optimizer, c.epochs, c)
    generator = torch.Generator().manual_seed(c.seed + 2)
    objects = {"ics": model.ics, "optimizer": optimizer, "schedule": scheduler, "generator": generator}

    def train_epoch(v: dict) -> None:
        for index, f in epoch_batches(task.feats, task.train_x, c.batch_size, generator):
            ensemble = boosted_logits(model.exit_logits(f), c.reweight, detach=True)[:, :-1]
            _step(optimizer, exit_losses(ensemble, task.train_y[index]).sum(1).mean())

    def validate(v: dict, epoch: int) -> tuple[float, dict]:
        with torch.no_grad():
            ensemble = boosted_logits(model.exit_logits(task.feats.validation(task.val_x)), c.reweight)
            acc = float((ensemble[:, -1].argmax(1) == task.val_y).float().mean())
        return acc, {"phase": "boosted", "epoch": epoch + 1, "val_last_ensemble_acc": acc}

    start = {"epoch": 0, "history": []}
    values = checkpointed_epochs(
        ckpt,
        "boosted",
        objects,
        start,
        c.epochs,
        train_epoch,
        validate,
        schedulers=[scheduler],
        keep={"ics": model.ics},
    )
    return {"history": values["history"]}


class WeightNet(nn.Module):
    """L2W-DEN's weight predictor: the G per-exit losses of a sample → G weights, MLP(G → hidden → G), ReLU, tanh;
    a sample's weights are 1 + spread·(w − w's mean over the batch). The original's: hidden 500, spread 0.3."""

    def __init__(self, exits: int, hidden: int, spread: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(exits, hidden), nn.ReLU(), nn.Linear(hidden, exits), nn.Tanh())
        self.spread = spread

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        w = self.net(losses)
        return 1 + self.spread * (w - w.mean(0, keepdim=True))  # centred over the batch, per exit (our reading)


def confidence_rank_assignment(probs: torch.Tensor, p: float) -> torch.Tensor:
    """L2W-DEN's meta-objective assignment: walking the exits in order, the most confident of the remaining samples
    are assigned to each exit in the proportions of the target distribution ∝ p^l (the last exit takes the rest).
    Exactly ⌊N·q_l⌋ per exit, by rank: unlike :func:`budget_thresholds`, whose thresholds let every sample tied at
    the threshold leave (saturated confidences of 1.0 tie often)."""
    n, exits = probs.shape[0], probs.shape[1]
    counts = torch.floor(target_distribution(p, exits) * n).long()
    assigned = torch.full((n,), exits - 1, dtype=torch.long, device=probs.device)
    free = torch.ones(n, dtype=torch.bool, device=probs.device)
    confidence = probs.max(-1).values
    for l in range(exits - 1):
        candidates = free.nonzero()[:, 0]
        take = candidates[confidence[candidates, l].argsort(descending=True)[: int(counts[l])]]
        assigned[take] = l
        free[take] = False
    return assigned


def train_l2w(model: DynamicNet, task: ExitTask, c: ExitConfig, checkpoint=None) -> dict:
    """L2W-DEN (Han et al., ECCV 2022) on the frozen backbone, as the original's port: the ICs minimise
    Σ_l w_il·CE_il with per-sample weights from :class:`WeightNet`; every ``meta_every`` batches a meta-step updates
    the weight net: a virtual SGD step of the ICs on one half of the batch with the weighted loss, then the
    cross-entropy of the stepped ICs on the other half, each sample counted at the exit that the confidence ranking
    assigns it (target distribution p = ``meta_p``), backpropagated to the weight net (Adam, ``meta_lr``,
    ``meta_weight_decay``); then the halves swap. As in the original, the frozen head is not an exit here, so the
    last IC takes the rest."""
    from torch.func import functional_call

    torch.manual_seed(c.seed)
    G = len(model.ics)
    weight_net = WeightNet(G, c.meta_hidden, c.meta_weight_spread).to(task.train_x.device)
    meta_opt = torch.optim.Adam(weight_net.parameters(), lr=c.meta_lr, weight_decay=c.meta_weight_decay)
    optimizer = _sgd(model.ics.parameters(), c)
    scheduler = _cosine(optimizer, c.epochs, c)
    ckpt = EpochCheckpoint(checkpoint)
    generator = torch.Generator().manual_seed(c.seed + 3)
    objects = {
        "ics": model.ics,
        "weight_net": weight_net,
        "optimizer": optimizer,
        "meta_optimizer": meta_opt,
        "schedule": scheduler,
        "generator": generator,
    }

    def ic_logits(f, params=None):
        if params is None:
            return torch.stack([ic(f[:, l]) for l, ic in enumerate(model.ics)], 1)
        return torch.stack(
            [
                functional_call(
                    model.ics[l],
                    {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(f"{l}.")},
                    (f[:, l],),
                )
                for l in range(G)
            ],
            1,
        )

    def train_epoch(v: dict) -> None:
        for index, f in epoch_batches(task.feats, task.train_x, c.batch_size, generator):
            y = task.train_y[index]
            if v["step"] % c.meta_every == 0 and len(y) >= 4:
                halves = (slice(0, len(y) // 2), slice(len(y) // 2, None))
                for a, b in (halves, halves[::-1]):
                    params = dict(model.ics.named_parameters())
                    ce = exit_losses(ic_logits(f[a]), y[a])
                    inner = (weight_net(ce.detach()) * ce).mean()
                    grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
                    stepped = {n: w - optimizer.param_groups[0]["lr"] * g for (n, w), g in zip(params.items(), grads)}
                    logits_b = ic_logits(f[b], stepped)
                    assigned = confidence_rank_assignment(logits_b.detach().softmax(-1), c.meta_p)
                    _step(meta_opt, F.cross_entropy(logits_b[torch.arange(len(assigned)), assigned], y[b]))
            ce = exit_losses(ic_logits(f), y)
            with torch.no_grad():
                w = weight_net(ce.detach())
            _step(optimizer, (w * ce).mean())
            v["step"] += 1

    def validate(v: dict, epoch: int) -> tuple[float, dict]:
        with torch.no_grad():
            acc = float(_accuracies(model.exit_logits(task.feats.validation(task.val_x)), task.val_y)[:G].mean())
        return acc, {"phase": "l2w", "epoch": epoch + 1, "val_mean_ic_acc": acc}

    start = {"epoch": 0, "history": [], "step": 0}
    values = checkpointed_epochs(
        ckpt, "l2w", objects, start, c.epochs, train_epoch, validate, schedulers=[scheduler], keep={"ics": model.ics}
    )
    return {"history": values["history"]}


def train_confidence_ics(model: DynamicNet, task: ExitTask, c: ExitConfig, checkpoint=None) -> dict:
    """The confidence-threshold baseline's ICs: the warm-up loss only, for the whole budget of epochs."""
    torch.manual_seed(c.seed)
    return warm_up_ics(
        model, task, dataclasses.replace(c, warmup_patience=c.epochs + 1), c.epochs, EpochCheckpoint(checkpoint)
    )


@dataclasses.dataclass(frozen=True)
class ExitMethod:
    """One way to train the exits on the frozen backbone and to use them. ``train(model, task, c, checkpoint)`` →
    {"history": …}. ``gated``: its gates choose each sample's exit (JEI-DNN); otherwise the gates are the identity
    (they cost nothing) and budgeted confidence thresholds choose (:func:`policies.evaluate_budgets`).
    ``combine(logits, c)``: the logits its exits predict with, when not each IC's own (BoostNet's ensembles)."""

    train: Callable[..., dict]
    gated: bool = False
    combine: Callable[[torch.Tensor, ExitConfig], torch.Tensor] | None = None


METHODS: Registry[ExitMethod] = Registry("exit method")
METHODS.register("jeidnn", ExitMethod(train_jeidnn, gated=True))
METHODS.register("confidence", ExitMethod(train_confidence_ics))
METHODS.register("boosted", ExitMethod(train_boosted, combine=lambda logits, c: boosted_logits(logits, c.reweight)))
METHODS.register("l2w", ExitMethod(train_l2w))
