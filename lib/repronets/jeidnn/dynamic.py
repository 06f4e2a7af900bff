"""JEI-DNN's dynamic network (docs/papers/jeidnn.md §2): intermediate classifiers (ICs) after every backbone block
but the last, gates on four uncertainty features of each IC, the exit rule, the gate objective with oracle exit
targets, and early-exit inference that really skips the remaining blocks.

Exits are numbered 0 … G: exit l < G is IC l after block l, exit G is the backbone's own head after the last block.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry
from .t2t_vit import T2TViT


def gate_features(logits: torch.Tensor) -> torch.Tensor:
    """(p_max, entropy H(p), margin p₍1₎ − p₍2₎, H(p²/Σp²)) of softmax(logits), natural log, detached: the original
    computes them in NumPy, so no gradient reaches the ICs through the gates."""
    logits = logits.detach().float()
    p = logits.softmax(-1)
    log_p = logits.log_softmax(-1)
    top2 = p.topk(2, dim=-1).values
    entropy = -(p * log_p).sum(-1)
    sq_log = 2 * log_p - torch.logsumexp(2 * log_p, -1, keepdim=True)
    sq_entropy = -(sq_log.exp() * sq_log).sum(-1)
    return torch.stack([top2[:, 0], entropy, top2[:, 0] - top2[:, 1], sq_entropy], -1)


def exit_step(g: torch.Tensor, spent: torch.Tensor, survive: torch.Tensor):
    """One gate of the exit rule: P = max(0, min(g, 1 − spent)), a = clip(P / survive, 0, 1); returns a and the
    updated spent = Σ raw g so far and survive = Π(1 − a) so far."""
    P = torch.clamp(torch.minimum(g, 1 - spent), min=0)
    a = torch.clamp(P / survive, 0, 1)
    return a, spent + g, survive * (1 - a)


def exit_scores(g: torch.Tensor) -> torch.Tensor:
    """The conditional exit scores a_l from gate outputs g (B, G), as the original's deterministic rule:
    P_l = max(0, min(g_l, 1 − Σ_{j<l} g_j)) (raw previous g), a_l = clip(P_l / Π_{j<l}(1 − a_j), 0, 1)."""
    a = []
    spent = torch.zeros_like(g[:, 0])
    survive = torch.ones_like(g[:, 0])
    for l in range(g.shape[1]):
        a_l, spent, survive = exit_step(g[:, l], spent, survive)
        a.append(a_l)
    return torch.stack(a, 1)


def exit_probabilities(g: torch.Tensor) -> torch.Tensor:
    """P_l = max(0, min(g_l, 1 − Σ_{j<l} g_j)) for the G gates (the probability mass of exiting at l)."""
    spent = torch.cumsum(g, 1) - g
    return torch.clamp(torch.minimum(g, 1 - spent), min=0)


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


class DynamicNet(nn.Module):
    """A T2T-ViT with G = depth − 1 ICs (the backbone's shared final LayerNorm, then Linear(embed, C) on the class
    token) and G gates (Linear(4, 1) on :func:`gate_features`, sigmoid)."""

    def __init__(self, backbone: T2TViT):
        super().__init__()
        self.backbone = backbone
        G, E, C = len(backbone.blocks) - 1, backbone.embed_dim, backbone.num_classes
        self.ics = nn.ModuleList(nn.Linear(E, C) for _ in range(G))
        self.gates = nn.ModuleList(nn.Linear(4, 1) for _ in range(G))
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
        ``force_exit`` sends every sample to that exit (cost and accuracy checks)."""
        bb = self.backbone
        G = len(self.ics)
        tokens = bb.tokens(x)
        n = x.shape[0]
        out = x.new_zeros(n, bb.num_classes)
        exits = torch.full((n,), G, dtype=torch.long, device=x.device)
        alive = torch.arange(n, device=x.device)
        spent = x.new_zeros(n)
        survive = x.new_ones(n)
        for l, block in enumerate(bb.blocks):
            tokens = block(tokens)
            if l == G:
                break
            logits = self.ics[l](bb.norm(tokens[:, 0]))
            if force_exit is None:
                g = torch.sigmoid(self.gates[l](gate_features(logits)))[:, 0]
                a, spent[alive], survive[alive] = exit_step(g, spent[alive], survive[alive])
                leave = a >= 0.5
            else:
                leave = torch.full((len(alive),), l == force_exit, device=x.device)
            if leave.any():
                out[alive[leave]] = logits[leave]
                exits[alive[leave]] = l
                keep = ~leave
                alive, tokens = alive[keep], tokens[keep]
            if len(alive) == 0:
                return out, exits
        out[alive] = bb.classify(tokens)
        return out, exits
