"""JEI-DNN's dynamic network (docs/papers/jeidnn.md §2): intermediate classifiers (ICs) after every backbone block
but the last, gates on four uncertainty features of each IC, the exit rule, the gate objective with oracle exit
targets, and early-exit inference that really skips the remaining blocks.

Exits are numbered 0 … G: exit l < G is IC l after block l, exit G is the backbone's own head after the last block.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from ..core.registry import Registry
from .t2t_vit import T2TViT


def gate_features(logits: torch.Tensor) -> torch.Tensor:
    """(p_max, entropy H(p), margin p₍1₎ − p₍2₎, H(p²/Σp²)) of softmax(logits), natural log, detached: the original
    computes them in NumPy, so no gradient reaches the ICs through the gates. Written in few operations (p from
    log p, entropies as dot products): early-exit inference evaluates it once per exit and sample batch."""
    log_p = logits.detach().float().log_softmax(-1)
    p = log_p.exp()
    top2 = p.topk(2, dim=-1).values
    entropy = -torch.linalg.vecdot(p, log_p)
    sq_log = 2 * log_p
    sq_log = sq_log - sq_log.logsumexp(-1, keepdim=True)  # log of p²/Σp²
    sq_entropy = -torch.linalg.vecdot(sq_log.exp(), sq_log)
    return torch.stack([top2[:, 0], entropy, top2[:, 0] - top2[:, 1], sq_entropy], -1)


def exit_step(g: torch.Tensor, spent: torch.Tensor, survive: torch.Tensor):
    """One gate of the original's exit rule: P = max(0, min(g, 1 − spent)), a = clip(P / survive, 0, 1); returns a
    and the updated spent = Σ raw g so far and survive = Π(1 − a) so far."""
    P = torch.clamp(torch.minimum(g, 1 - spent), min=0)
    a = torch.clamp(P / survive, 0, 1)
    return a, spent + g, survive * (1 - a)


def _code_scores(g: torch.Tensor) -> torch.Tensor:
    a = []
    spent = torch.zeros_like(g[:, 0])
    survive = torch.ones_like(g[:, 0])
    for l in range(g.shape[1]):
        a_l, spent, survive = exit_step(g[:, l], spent, survive)
        a.append(a_l)
    return torch.stack(a, 1)


def _code_step(g: torch.Tensor, state: tuple) -> tuple:
    a, spent, survive = exit_step(g, *state)
    return a, (spent, survive)


def _code_probabilities(g: torch.Tensor) -> torch.Tensor:
    spent = torch.cumsum(g, 1) - g
    return torch.clamp(torch.minimum(g, 1 - spent), min=0)


def _conditional_probabilities(g: torch.Tensor) -> torch.Tensor:
    reach = torch.cumprod(torch.cat([torch.ones_like(g[:, :1]), 1 - g[:, :-1]], 1), 1)
    return g * reach


@dataclasses.dataclass(frozen=True)
class ExitRule:
    """How gate outputs g (B, G) become exits. ``scores(g)``: a_l, the probability of exiting at l given that l is
    reached (a sample leaves at the first a_l ≥ 0.5); ``probabilities(g)``: P_l, the probability mass of exiting at l
    (the IC loss's weights); ``step(g_l, state)`` → (a_l, state): the scores one gate at a time, for
    :meth:`DynamicNet.infer` (state: (spent, survive) per sample, from ``start``)."""

    scores: Callable[[torch.Tensor], torch.Tensor]
    probabilities: Callable[[torch.Tensor], torch.Tensor]
    step: Callable

    def start(self, n: int, like: torch.Tensor):
        return like.new_zeros(n), like.new_ones(n)


# The exit rule by name. ``code``: the original's (and the paper's Eq. 8, a ``min`` that keeps Σ_l P_l ≤ 1): g_l is
# read as the probability mass of exiting at l, P_l = max(0, min(g_l, 1 − Σ_{j<l} g_j)), a_l = P_l / Π_{j<l}(1 − a_j).
# Its gate targets are cumulative (gate l: 1 iff l* ≤ l), so a trained g_l estimates P(l* ≤ l), a distribution
# function, not a mass: read as masses, the first few gates' outputs sum past 1 and no sample reaches the later ones.
# ``conditional``: g_l read as what those targets train it to be, the probability that the best exit is at or before
# l for a sample that reached l: a_l = g_l (exit at the first g_l ≥ 0.5), P_l = g_l · Π_{j<l}(1 − g_j).
EXIT_RULES: Registry[ExitRule] = Registry("exit rule")
EXIT_RULES.register("code", ExitRule(_code_scores, _code_probabilities, _code_step))
EXIT_RULES.register("conditional", ExitRule(lambda g: g, _conditional_probabilities, lambda g, state: (g, state)))


def exit_scores(g: torch.Tensor, rule: str = "code") -> torch.Tensor:
    """The conditional exit scores a_l from gate outputs g (B, G) under ``rule`` (:data:`EXIT_RULES`); the
    original's: P_l = max(0, min(g_l, 1 − Σ_{j<l} g_j)) (raw previous g), a_l = clip(P_l / Π_{j<l}(1 − a_j), 0, 1)."""
    return EXIT_RULES.get(rule).scores(g)


def exit_probabilities(g: torch.Tensor, rule: str = "code") -> torch.Tensor:
    """P_l, the probability mass of exiting at each of the G gates under ``rule``; the original's:
    P_l = max(0, min(g_l, 1 − Σ_{j<l} g_j)). (Summing the raw g or the clipped P_j gives the same P: the two agree
    while Σ g ≤ 1, and once it passes 1 both give the rest of the mass to that gate and 0 after it.)"""
    return EXIT_RULES.get(rule).probabilities(g)


def first_exit(a: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The first l with a_l ≥ threshold, G (the final head) when there is none."""
    hit = a >= threshold
    G = a.shape[1]
    index = torch.arange(G, device=a.device).expand_as(a)
    return torch.where(hit, index, G).min(1).values


def oracle_exits(ce: torch.Tensor, costs: torch.Tensor, tradeoff: float) -> torch.Tensor:
    """l* = argmin_l CE_l + λ·c_l over the G + 1 exits; ce (B, G+1), costs (G+1,)."""
    return (ce + tradeoff * costs).argmin(1)


def gate_targets(oracle: torch.Tensor, gates: int) -> torch.Tensor:
    """Exit-subsequent targets: gate l has target 1 iff l ≥ l* (all 0 when l* is the final exit)."""
    return (torch.arange(gates, device=oracle.device)[None, :] >= oracle[:, None]).float()


POSITIVE_COUNTS: Registry = Registry("pos_weight counting")  # name -> n_l of each gate, from (oracle, gates)
POSITIVE_COUNTS.register(
    "exact", lambda oracle, gates: torch.stack([(oracle == l).sum() for l in range(gates)]).float()
)
POSITIVE_COUNTS.register("positives", lambda oracle, gates: gate_targets(oracle, gates).sum(0))


def positive_weights(oracle: torch.Tensor, gates: int, counting: str = "exact", cap: float = 5.0) -> torch.Tensor:
    """pos_weight_l = (N − n_l)/max(n_l, 0.1), capped: ``exact`` counts samples whose oracle exit is exactly l (the
    original), ``positives`` counts gate l's positive targets (l* ≤ l), which is what a BCE pos_weight balances."""
    counts = POSITIVE_COUNTS.create(counting, oracle, gates)
    return torch.clamp((len(oracle) - counts) / torch.clamp(counts, min=0.1), max=cap)


IC_INITS = ("default", "trunc_normal")


class DynamicNet(nn.Module):
    """A T2T-ViT with G = depth − 1 ICs (the backbone's shared final LayerNorm, then Linear(embed, C) on the class
    token) and G gates (Linear(4, 1) on :func:`gate_features`, sigmoid), whose outputs become exits by
    ``exit_rule`` (:data:`EXIT_RULES`). ``ic_init``: ``default`` (the original: its ICs are added after the
    backbone's initialisation and keep ``nn.Linear``'s) or ``trunc_normal`` (the backbone's own: weights
    N(0, 0.02) truncated, zero bias)."""

    def __init__(self, backbone: T2TViT, exit_rule: str = "code", ic_init: str = "default"):
        super().__init__()
        if ic_init not in IC_INITS:
            raise ValueError(f"ic_init must be one of {IC_INITS}, got {ic_init!r}")
        self.backbone = backbone
        EXIT_RULES.get(exit_rule)  # an unknown name fails here, naming the rules
        self.exit_rule = exit_rule
        G, E, C = len(backbone.blocks) - 1, backbone.embed_dim, backbone.num_classes
        self.ics = nn.ModuleList(nn.Linear(E, C) for _ in range(G))
        self.gates = nn.ModuleList(nn.Linear(4, 1) for _ in range(G))
        if ic_init == "trunc_normal":
            for ic in self.ics:
                nn.init.trunc_normal_(ic.weight, std=0.02)
                nn.init.zeros_(ic.bias)

    @property
    def num_exits(self) -> int:
        return len(self.ics) + 1

    def freeze_backbone(self) -> None:
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def class_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised class token after every block, (B, G+1, E): all the exits need from the backbone."""
        outs = [self.backbone.norm(tokens[:, 0]) for tokens in self.backbone.forward_blocks(x)]
        return torch.stack(outs, 1)

    def exit_logits(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits of every exit from the class tokens, (B, G+1, C)."""
        ics = [ic(feats[:, l]) for l, ic in enumerate(self.ics)]
        return torch.stack([*ics, self.backbone.head(feats[:, -1])], 1)

    def gate_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """gate_l(features of IC l), (B, G); gradients reach the gates only (the features are detached)."""
        return torch.cat([gate(gate_features(logits[:, l])) for l, gate in enumerate(self.gates)], 1)

    def gate_values(self, logits: torch.Tensor) -> torch.Tensor:
        """g_l = sigmoid of :meth:`gate_logits`."""
        return torch.sigmoid(self.gate_logits(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All exits' logits (training and analysis); :meth:`infer` is the early-exit path."""
        return self.exit_logits(self.class_tokens(x))

    @torch.no_grad()
    def infer(self, x: torch.Tensor, force_exit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Early-exit inference: after block l only the samples that have not exited yet go on, so the remaining
        blocks run on fewer samples (none when all have left). Returns (logits of each sample's exit, exit index).
        ``force_exit`` sends every sample to that exit (cost and accuracy checks).

        The per-exit work is kept to few tensor operations, since at batch 1 each costs about as much as its
        arithmetic: the rule's state travels with the samples still present (no scatter into full-size tensors),
        and ``alive`` (their original positions) is built only once a sample has left."""
        bb = self.backbone
        G = len(self.ics)
        rule = EXIT_RULES.get(self.exit_rule)
        tokens = bb.tokens(x)
        n = x.shape[0]
        out = x.new_empty(n, bb.num_classes)
        exits = torch.full((n,), G, dtype=torch.long, device=x.device)
        alive = None  # None: every sample, in order
        state = rule.start(n, x)
        for l in range(G):
            tokens = bb.blocks[l](tokens)
            logits = self.ics[l](bb.norm(tokens[:, 0]))
            if force_exit is None:
                a, state = rule.step(torch.sigmoid(self.gates[l](gate_features(logits)))[:, 0], state)
                leave = a >= 0.5
            elif l == force_exit:
                leave = torch.ones(len(tokens), dtype=torch.bool, device=x.device)
            else:
                continue
            left = leave.nonzero()[:, 0]
            if len(left) == 0:
                continue
            where = left if alive is None else alive[left]
            out[where] = logits[left]
            exits[where] = l
            if len(left) == len(tokens):
                return out, exits
            stay = (~leave).nonzero()[:, 0]
            alive = stay if alive is None else alive[stay]
            tokens = tokens[stay]
            state = tuple(s[stay] for s in state)
        last = bb.classify(bb.blocks[G](tokens))
        if alive is None:
            return last, exits
        out[alive] = last
        return out, exits
