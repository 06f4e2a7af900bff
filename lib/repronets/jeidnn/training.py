"""Training of JEI-DNN and of the baselines' exits on a frozen backbone (shared/papers/jeidnn.md §2.4–2.7, §4).

Phase 0 (the backbone) uses ``train.fit`` (``BackboneTraining``: transfer learning from the official checkpoint with
the pretrained part at ``lr_scale``× the head's rate, or training from scratch). Phases 1–3 act on the exits only and
are written here: a loop over batches that alternates between the gates and the ICs every ``alternate_every`` batches
needs per-batch control that ``fit`` does not give. All of them read the backbone through :class:`Features`.

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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..transforms import Preprocess
from .dynamic import (
    DynamicNet,
    exit_probabilities,
    exit_scores,
    first_exit,
    gate_targets,
    oracle_exits,
    positive_weights,
)


class BackboneTraining(nn.Module):
    """The backbone as ``train.fit`` sees it, with the original's learning-rate groups (head at the base rate, the
    tokens-to-token module and the blocks at ``lr_scale`` × it)."""

    def __init__(self, backbone, lr_scale: float = 1.0):
        super().__init__()
        self.backbone, self.lr_scale = backbone, lr_scale

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
        self._cache: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def _compute(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        self.model.backbone.train(training and self.mode == "train")
        out = self.model.class_tokens(self.preprocess(x, training and self.augment))
        self.model.backbone.eval()
        return out

    def evaluation(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a whole split for evaluation (eval mode, no augmentation), cached."""
        key = id(x)
        if key not in self._cache:
            self._cache[key] = torch.cat(
                [self._compute(x[i : i + self.batch_size], False) for i in range(0, len(x), self.batch_size)]
            )
        return self._cache[key]

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


def epoch_batches(feats: Features, x: torch.Tensor, batch_size: int, generator: torch.Generator):
    """One epoch of training batches, (index, features), in an order drawn from ``generator``."""
    for index in torch.randperm(len(x), generator=generator).split(batch_size):
        yield index, feats.training_batch(x, index)


class EpochCheckpoint:
    """Per-epoch checkpoints of the exit-training loops: an interrupted run resumes after its last finished epoch with
    the numbers of an uninterrupted one. Saved: the loop's modules, optimizers, schedulers and generators, its plain
    values (best states, histories, counters) and the global torch RNGs (dropout on the frozen features and the
    augmentation draw from them). ``path`` None: nothing is saved."""

    def __init__(self, path=None):
        from pathlib import Path

        self.path = Path(path) if path else None
        self.saved = torch.load(self.path, weights_only=False) if self.path and self.path.exists() else None

    @property
    def stage(self) -> str | None:
        return self.saved["stage"] if self.saved else None

    def restore(self, stage: str, objects: dict) -> dict | None:
        if self.stage != stage:
            return None
        for name, obj in objects.items():
            state = self.saved["objects"][name]
            obj.set_state(state) if isinstance(obj, torch.Generator) else obj.load_state_dict(state)
        torch.set_rng_state(self.saved["rng"])
        if self.saved.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.saved["cuda_rng"])
        return self.saved["values"]

    def save(self, stage: str, objects: dict, values: dict) -> None:
        if self.path is None:
            return
        from .. import fileio

        self.saved = {
            "stage": stage,
            "values": values,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "objects": {
                k: o.get_state() if isinstance(o, torch.Generator) else o.state_dict() for k, o in objects.items()
            },
        }
        fileio.save_torch(self.path, self.saved)


def exit_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of every exit, (B, G+1)."""
    B, E, C = logits.shape
    return F.cross_entropy(logits.reshape(B * E, C), y.repeat_interleave(E), reduction="none").view(B, E)


def ic_loss(ce: torch.Tensor, P: torch.Tensor, mode: str) -> torch.Tensor:
    """The IC objective over the G ICs: ce, P (B, G). ``code``: the original's formula mean(P·L·S/W), S = Σ_l L_l,
    W = Σ_l P_l·L_l (P constant), which equals mean(L) exactly; ``exit_weighted``: mean(P·L), the intended weighting."""
    if mode == "code":
        S = ce.sum(1, keepdim=True)
        W = (P * ce).sum(1, keepdim=True)
        return (P * ce * S / W).mean()
    if mode == "exit_weighted":
        return (P * ce).mean()
    raise ValueError(f"ic_loss must be code or exit_weighted, got {mode!r}")


def warmup_weights(G: int) -> torch.Tensor:
    """The warm-up loss weights of the G ICs: G+1, G, …, 2 (7 … 2 for T2T-ViT-7)."""
    return torch.arange(G + 1, 1, -1, dtype=torch.float32)


@dataclasses.dataclass
class ExitConfig:
    epochs: int
    batch_size: int
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eta_min: float = 2e-4
    max_warmup_epochs: int = 6
    warmup_patience: int = 2
    alternate_every: int = 200
    tradeoff: float = 0.1  # λ, ce_ic_tradeoff
    ic_loss: str = "code"
    pos_weight: str = "exact"
    seed: int = 0


def _sgd(params, c: ExitConfig):
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


def _accuracies(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == y[:, None]).float().mean(0)


def warm_up_ics(
    model: DynamicNet,
    feats: Features,
    train_x,
    train_y,
    val_x,
    val_y,
    c: ExitConfig,
    epochs: int,
    history: list,
    ckpt: EpochCheckpoint | None = None,
) -> None:
    """IC warm-up: loss Σ_l (G+1−l)·CE(IC_l); an IC whose validation accuracy has not improved for
    ``warmup_patience`` epochs gets its best weights back and is frozen; stops when all are frozen or after
    ``epochs``; then every IC is trainable again."""
    ckpt = ckpt or EpochCheckpoint()
    G = len(model.ics)
    weights = warmup_weights(G).to(train_x.device)
    optimizer = _sgd(model.ics.parameters(), c)
    generator = torch.Generator().manual_seed(c.seed)
    objects = {"ics": model.ics, "optimizer": optimizer, "generator": generator}
    values = ckpt.restore("warmup", objects) or {
        "best": [(-1.0, copy.deepcopy(ic.state_dict())) for ic in model.ics],
        "stale": [0] * G,
        "frozen": [False] * G,
        "epoch": 0,
        "history": list(history),
    }
    best, stale, frozen = values["best"], values["stale"], values["frozen"]
    history[:] = values["history"]
    for ic, f in zip(model.ics, frozen):
        ic.requires_grad_(not f)
    for epoch in range(values["epoch"], epochs):
        if all(frozen):
            break
        for index, f in epoch_batches(feats, train_x, c.batch_size, generator):
            logits = torch.stack([ic(f[:, l]) for l, ic in enumerate(model.ics)], 1)
            ce = exit_losses(logits, train_y[index])
            loss = (ce * weights).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            acc = _accuracies(model.exit_logits(feats.validation(val_x))[:, :G], val_y)
        history.append({"phase": "warmup", "epoch": epoch + 1, **{f"val_acc{l}": float(a) for l, a in enumerate(acc)}})
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
        ckpt.save(
            "warmup", objects, {"best": best, "stale": stale, "frozen": frozen, "epoch": epoch + 1, "history": history}
        )
    model.ics.requires_grad_(True)


def train_jeidnn(
    model: DynamicNet,
    feats: Features,
    train_x,
    train_y,
    val_x,
    val_y,
    costs: torch.Tensor,
    c: ExitConfig,
    checkpoint=None,
) -> dict:
    """Phases 1–3 of JEI-DNN: ICs and gates trained on the frozen backbone; the state with the best validation gated
    accuracy (after the warm-up) is kept. Returns the history. With ``checkpoint`` (a path) it resumes."""
    ckpt = EpochCheckpoint(checkpoint)
    torch.manual_seed(c.seed)
    G = len(model.ics)
    costs = costs.to(train_x.device)
    history: list[dict] = []
    warm = min(c.max_warmup_epochs, c.epochs)
    if ckpt.stage != "joint":
        warm_up_ics(model, feats, train_x, train_y, val_x, val_y, c, warm, history, ckpt)
    ic_opt, gate_opt = _sgd(model.ics.parameters(), c), _sgd(model.gates.parameters(), c)
    remaining = max(c.epochs - warm, 1)
    schedulers = [
        torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=remaining, eta_min=c.eta_min) for o in (ic_opt, gate_opt)
    ]
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
    values = ckpt.restore("joint", objects) or {
        "pos_weight": torch.ones(G),
        "epoch": 0,
        "history": history,
        "best": (-1.0, copy.deepcopy({"ics": model.ics.state_dict(), "gates": model.gates.state_dict()})),
    }
    pos_weight, best, history = values["pos_weight"].to(train_x.device), values["best"], values["history"]
    for epoch in range(values["epoch"], remaining):
        for b, (index, f) in enumerate(epoch_batches(feats, train_x, c.batch_size, generator)):
            y = train_y[index]
            if (b // c.alternate_every) % 2 == 0:  # gate phase first, as the original
                with torch.no_grad():
                    logits = model.exit_logits(f)
                    target = gate_targets(oracle_exits(exit_losses(logits, y), costs, c.tradeoff), G)
                loss = F.binary_cross_entropy_with_logits(model.gate_logits(logits), target, pos_weight=pos_weight)
                opt, idle = gate_opt, ic_opt
            else:
                logits = model.exit_logits(f)
                with torch.no_grad():
                    P = exit_probabilities(model.gate_values(logits))
                loss = ic_loss(exit_losses(logits, y)[:, :G], P, c.ic_loss)
                opt, idle = ic_opt, gate_opt
            idle.zero_grad(set_to_none=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        for s in schedulers:
            s.step()
        with torch.no_grad():
            logits = model.exit_logits(feats.validation(val_x))
            exits = first_exit(exit_scores(model.gate_values(logits)))
            gated = logits[torch.arange(len(val_y)), exits]
            acc = float((gated.argmax(1) == val_y).float().mean())
            oracle = oracle_exits(exit_losses(logits, val_y), costs, c.tradeoff)
            pos_weight = positive_weights(oracle, G, c.pos_weight).to(train_x.device)
        history.append(
            {
                "phase": "joint",
                "epoch": warm + epoch + 1,
                "val_gated_acc": acc,
                "val_mean_exit": float(exits.float().mean()),
            }
        )
        if acc > best[0]:
            best = (acc, copy.deepcopy({"ics": model.ics.state_dict(), "gates": model.gates.state_dict()}))
        ckpt.save(
            "joint", objects, {"pos_weight": pos_weight.cpu(), "epoch": epoch + 1, "history": history, "best": best}
        )
    model.ics.load_state_dict(best[1]["ics"])
    model.gates.load_state_dict(best[1]["gates"])
    return {"history": history, "best_val_gated_acc": best[0]}


def train_boosted(
    model: DynamicNet,
    feats: Features,
    train_x,
    train_y,
    val_x,
    val_y,
    c: ExitConfig,
    reweight: float = 0.5,
    checkpoint=None,
) -> dict:
    """BoostNet-style ICs: stage s is trained on CE(o_s + r·stopgrad(F_{s−1})), F_s = o_s + r·F_{s−1}, so training
    matches the ensemble used at inference; the last stage is the frozen head. Selected on the validation accuracy
    of the last ensemble."""
    ckpt = EpochCheckpoint(checkpoint)
    torch.manual_seed(c.seed)
    optimizer = _sgd(model.ics.parameters(), c)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.epochs, eta_min=c.eta_min)
    generator = torch.Generator().manual_seed(c.seed + 2)
    objects = {"ics": model.ics, "optimizer": optimizer, "schedule": scheduler, "generator": generator}
    values = ckpt.restore("boosted", objects) or {
        "best": (-1.0, copy.deepcopy(model.ics.state_dict())),
        "history": [],
        "epoch": 0,
    }
    best, history = values["best"], values["history"]
    for epoch in range(values["epoch"], c.epochs):
        for index, f in epoch_batches(feats, train_x, c.batch_size, generator):
            logits = model.exit_logits(f)
            loss = boosted_logits(logits, reweight, detach=True)[:, :-1]
            loss = exit_losses(loss, train_y[index]).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        with torch.no_grad():
            ensemble = boosted_logits(model.exit_logits(feats.validation(val_x)), reweight)
            acc = float((ensemble[:, -1].argmax(1) == val_y).float().mean())
        history.append({"phase": "boosted", "epoch": epoch + 1, "val_last_ensemble_acc": acc})
        if acc > best[0]:
            best = (acc, copy.deepcopy(model.ics.state_dict()))
        ckpt.save("boosted", objects, {"best": best, "history": history, "epoch": epoch + 1})
    model.ics.load_state_dict(best[1])
    return {"history": history}


class WeightNet(nn.Module):
    """L2W-DEN's weight predictor: the G per-exit losses of a sample → G weights, MLP(G → hidden → G), ReLU, tanh."""

    def __init__(self, exits: int, hidden: int = 500):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(exits, hidden), nn.ReLU(), nn.Linear(hidden, exits), nn.Tanh())

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        w = self.net(losses)
        return 1 + 0.3 * (w - w.mean(0, keepdim=True))  # centred over the batch, per exit (our reading)


def target_distribution(p: float, exits: int) -> torch.Tensor:
    """The budget levels' target share of samples per exit, ∝ p^l (MSDNet's; L2W-DEN's meta-objective too)."""
    q = torch.tensor([p**l for l in range(exits)], dtype=torch.float64)
    return q / q.sum()


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


def train_l2w(
    model: DynamicNet,
    feats: Features,
    train_x,
    train_y,
    val_x,
    val_y,
    c: ExitConfig,
    meta_every: int = 100,
    meta_p: float = 0.75,
    meta_lr: float = 1e-4,
    checkpoint=None,
) -> dict:
    """L2W-DEN (Han et al., ECCV 2022) on the frozen backbone, as the original's port: the ICs minimise
    Σ_l w_il·CE_il with per-sample weights from :class:`WeightNet`; every ``meta_every`` batches a meta-step updates
    the weight net: a virtual SGD step of the ICs on one half of the batch with the weighted loss, then the
    cross-entropy of the stepped ICs on the other half, each sample counted at the exit that the confidence ranking
    assigns it (target distribution p = ``meta_p``), backpropagated to the weight net (Adam, lr 1e-4, wd 1e-4); then
    the halves swap. As in the original, the frozen head is not an exit here, so the last IC takes the rest."""
    from torch.func import functional_call

    torch.manual_seed(c.seed)
    G = len(model.ics)
    weight_net = WeightNet(G).to(train_x.device)
    meta_opt = torch.optim.Adam(weight_net.parameters(), lr=meta_lr, weight_decay=1e-4)
    optimizer = _sgd(model.ics.parameters(), c)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.epochs, eta_min=c.eta_min)
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
    values = ckpt.restore("l2w", objects) or {
        "best": (-1.0, copy.deepcopy(model.ics.state_dict())),
        "history": [],
        "epoch": 0,
        "step": 0,
    }
    best, history = values["best"], values["history"]

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

    step = values["step"]
    for epoch in range(values["epoch"], c.epochs):
        for index, f in epoch_batches(feats, train_x, c.batch_size, generator):
            y = train_y[index]
            if step % meta_every == 0 and len(y) >= 4:
                halves = (slice(0, len(y) // 2), slice(len(y) // 2, None))
                for a, b in (halves, halves[::-1]):
                    params = dict(model.ics.named_parameters())
                    ce = exit_losses(ic_logits(f[a]), y[a])
                    inner = (weight_net(ce.detach()) * ce).mean()
                    grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
                    stepped = {n: v - optimizer.param_groups[0]["lr"] * g for (n, v), g in zip(params.items(), grads)}
                    logits_b = ic_logits(f[b], stepped)
                    assigned = confidence_rank_assignment(logits_b.detach().softmax(-1), meta_p)
                    meta = F.cross_entropy(logits_b[torch.arange(len(assigned)), assigned], y[b])
                    meta_opt.zero_grad(set_to_none=True)
                    meta.backward()
                    meta_opt.step()
            ce = exit_losses(ic_logits(f), y)
            with torch.no_grad():
                w = weight_net(ce.detach())
            loss = (w * ce).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        scheduler.step()
        with torch.no_grad():
            acc = float(_accuracies(model.exit_logits(feats.validation(val_x)), val_y)[:G].mean())
        history.append({"phase": "l2w", "epoch": epoch + 1, "val_mean_ic_acc": acc})
        if acc > best[0]:
            best = (acc, copy.deepcopy(model.ics.state_dict()))
        ckpt.save("l2w", objects, {"best": best, "history": history, "epoch": epoch + 1, "step": step})
    model.ics.load_state_dict(best[1])
    return {"history": history}


def boosted_logits(logits: torch.Tensor, reweight: float = 0.5, detach: bool = False) -> torch.Tensor:
    """F_s = o_s + r·F_{s−1} for every exit (training: the previous ensemble detached inside each stage's input)."""
    out = [logits[:, 0]]
    for s in range(1, logits.shape[1]):
        prev = out[-1].detach() if detach else out[-1]
        out.append(logits[:, s] + reweight * prev)
    return torch.stack(out, 1)


def train_confidence_ics(
    model: DynamicNet, feats: Features, train_x, train_y, val_x, val_y, c: ExitConfig, checkpoint=None
) -> dict:
    """The confidence-threshold baseline's ICs: the warm-up loss only, for the whole budget of epochs."""
    torch.manual_seed(c.seed)
    history: list[dict] = []
    warm_up_ics(
        model,
        feats,
        train_x,
        train_y,
        val_x,
        val_y,
        dataclasses.replace(c, warmup_patience=c.epochs + 1),
        c.epochs,
        history,
        EpochCheckpoint(checkpoint),
    )
    return {"history": history}


def budget_thresholds(confidence: torch.Tensor, p: float) -> torch.Tensor:
    """MSDNet's budgeted thresholds: a target exit distribution ∝ p^l over the exits; walking the exits in order,
    threshold l lets the ⌊N·q_l⌋ most confident of the samples still present exit; the last exit takes the rest.
    confidence (N, G+1): each exit's max softmax probability."""
    n, exits = confidence.shape
    q = target_distribution(p, exits)
    thresholds = torch.full((exits,), -1e8, dtype=confidence.dtype)
    present = torch.ones(n, dtype=torch.bool)
    for l in range(exits - 1):
        want = int(np.floor(n * float(q[l])))
        want = min(want, int(present.sum()))
        if want > 0:
            values = confidence[present, l].sort(descending=True).values
            thresholds[l] = values[want - 1]
            leaving = present & (confidence[:, l] >= thresholds[l])
        else:
            thresholds[l] = float("inf")
            leaving = torch.zeros(n, dtype=torch.bool)
        present &= ~leaving
    return thresholds


def threshold_exits(confidence: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """The first exit whose confidence reaches its threshold (the last exit always does)."""
    hit = confidence >= thresholds.to(confidence.device)[None, :]
    hit[:, -1] = True
    return hit.float().argmax(1)
