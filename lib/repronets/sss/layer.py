"""Sequentially semiseparable (SSS) weight matrices, trained by backpropagation through states
(Kissel et al., EPIA 2022; docs/papers/sss.md §1).

``SSSLinear(in_features, out_features, state_dim, stages)`` computes y = T·u + b, where T (out × in) is given by its
SSS generators over N stages (input blocks of ``in/N``, output blocks of ``out/N`` entries):

    T_kk = D_k,   T_ij = C_i A_{i−1}…A_{j+1} B_j  (i > j),   T_ij = G_i E_{i+1}…E_{j−1} F_j  (i < j)

computed by two state recursions, causal x_{k+1} = A_k x_k + B_k u_k (y_k += C_k x_k) and anticausal
z_{j−1} = E_j z_j + F_j u_j (y_j += G_j z_j); gradients are autograd through them. State dimensions follow the
original's profile d_k = min(s, rank of Hankel block k): zero at both ends.

How it is computed, and why: the original loops over the N stages in Python (about ten tiny matrix products per
stage), O(N) interpreter steps per pass. Here the two recursions are solved in closed form per chunk of stages: the
stages are cut into chunks (a power of two, :func:`default_chunk`), and log₂(chunk) batched doublings turn the
generators into each chunk's dense diagonal block of T and the maps between the chunk's inputs, outputs and boundary
states; the same doublings one level up map the states leaving chunks to the states entering later (causal) or
earlier (anticausal) chunks. The batch then meets only four batched matrix products: O(batch·n·(chunk·m + s)) work
instead of the dense O(batch·n²), no Python loop over stages or samples, and autograd differentiates through all of
it ("backpropagation through states" as in the original: the adjoint recursions are the transposed operators). With
one chunk the same construction assembles the dense T (``dense()``), which is also the product used when the rule
picks a chunk ≥ N. The generators live in flat parameters (exact parameter counts, one tensor per kind) and are
scattered into zero-padded per-stage tensors for each pass.

Measured (1 CPU thread, batch 256, forward + backward): faster than ``nn.Linear`` from n ≈ 1024 at s = 4 and many
times faster than a per-stage loop; see README (paper 3) and bench/bench_sss.py. Strongly contracting A_k make the
within-chunk products underflow to subnormal floats, which CPUs process very slowly; ``torch.set_flush_denormal(True)``
avoids that if it happens (it does not at the Hankel-SVD initialisation, whose A_k have spectral norm 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def causal_dims(stages: int, state_dim: int, m_in: int, m_out: int) -> list[int]:
    """d_0 … d_N: the state entering each stage (d_0 = d_N = 0), min(s, rank bound of the Hankel block)."""
    return [min(state_dim, k * m_in, (stages - k) * m_out) if 0 < k < stages else 0 for k in range(stages + 1)]


def anticausal_dims(stages: int, state_dim: int, m_in: int, m_out: int) -> list[int]:
    """The anticausal state dimensions: the causal profile of the transposed matrix. Entry j + 1 is the dimension of
    the state entering stage j from above (so entry N, for stage N−1, is 0, and entry 0 is 0 too)."""
    return causal_dims(stages, state_dim, m_out, m_in)


class _Packed(nn.Module):
    """One kind of generator (e.g. all A_k), stored flat and scattered into a zero-padded (N, rows, cols) tensor."""

    def __init__(self, shapes: list[tuple[int, int]], rows: int, cols: int):
        super().__init__()
        index = []
        for k, (r, c) in enumerate(shapes):
            block = torch.arange(rows * cols).view(rows, cols)[:r, :c].flatten() + k * rows * cols
            index.append(block)
        self.register_buffer("index", torch.cat(index) if index else torch.zeros(0, dtype=torch.long))
        self.shapes, self.size = shapes, (len(shapes), rows, cols)
        self.values = nn.Parameter(torch.zeros(len(self.index)))

    def padded(self) -> torch.Tensor:
        n, r, c = self.size
        out = self.values.new_zeros(n * r * c)
        return out.index_put((self.index,), self.values).view(n, r, c)

    def set(self, blocks: list[np.ndarray]) -> None:
        flat = np.concatenate([np.asarray(b, dtype=np.float64).reshape(-1) for b in blocks]) if blocks else np.zeros(0)
        with torch.no_grad():
            self.values.copy_(torch.as_tensor(flat, dtype=self.values.dtype))


def _chunk_operators(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, chunk: int):
    """A causal system (A_k, B_k, C_k) over N = chunks·chunk stages (``chunk`` a power of two; any leading batch
    dimensions before the stage dimension), as per-chunk operators:

    lower (…, chunks, chunk·m_out, chunk·m_in): the strictly lower block part of T inside each chunk;
    K (…, chunks, s, chunk·m_in): the chunk's inputs → the state leaving it;
    P (…, chunks, s, s): the state entering the chunk → the state leaving it;
    Ob (…, chunks, chunk·m_out, s): the state entering the chunk → the chunk's outputs.

    Built by log₂(chunk) doublings that merge neighbouring pieces a, b (a first): lower = [[lower_a, 0],
    [Ob_b K_a, lower_b]], K = [P_b K_a, K_b], P = P_b P_a, Ob = [Ob_a; Ob_b P_a]. Each doubling is a handful of
    batched products over all pieces at once, and nothing here depends on the batch of inputs.
    """
    lower = B.new_zeros(*B.shape[:-2], C.shape[-2], B.shape[-1])
    K, P, Ob = B, A, C
    size = 1
    while size < chunk:
        la, lb = lower[..., 0::2, :, :], lower[..., 1::2, :, :]
        Ka, Kb, Pa, Pb = K[..., 0::2, :, :], K[..., 1::2, :, :], P[..., 0::2, :, :], P[..., 1::2, :, :]
        Oa, Ob_b = Ob[..., 0::2, :, :], Ob[..., 1::2, :, :]
        lower = torch.cat([torch.cat([la, torch.zeros_like(la)], -1), torch.cat([Ob_b @ Ka, lb], -1)], -2)
        K = torch.cat([Pb @ Ka, Kb], -1)
        Ob = torch.cat([Oa, Ob_b @ Pa], -2)
        P = Pb @ Pa
        size *= 2
    return lower, K, P, Ob


def default_chunk(stages: int, m_in: int, m_out: int, state_dim: int) -> int:
    """Stages per chunk (a power of two; ≥ ``stages`` means the dense product).

    Per sample, the diagonal chunk blocks cost n·chunk·m multiply-adds and the chunk-level state maps 2(N·s/chunk)²,
    balanced at chunk³ = 2·N·s²/(m_in·m_out); each doubling also costs a fixed ~0.1 ms of autograd work on the CPU,
    so chunks below 16 stages do not pay. This rule picks the measured best or within 10 % of it for n = 256 … 4096,
    s = 1 and 4, batch 256 (bench/bench_sss.py; README, paper 3).
    """
    balance = (2.0 * stages * max(1, state_dim) ** 2 / (m_in * m_out)) ** (1 / 3)
    return max(16, 1 << round(math.log2(balance)))


class SSSLinear(nn.Module):
    """y = T·u + b with T in SSS form (see the module docstring). ``stages`` defaults to ``in_features`` (m = 1)."""

    def __init__(
        self,
        in_features: int,
        out_features: int | None = None,
        state_dim: int = 1,
        stages: int | None = None,
        bias: bool = True,
        init: str = "hankel_svd",
        generator: np.random.Generator | None = None,
        chunk: int | None = None,
    ):
        super().__init__()
        if chunk is not None and (chunk < 1 or chunk & (chunk - 1)):
            raise ValueError(f"chunk must be a power of two, got {chunk}")
        self.chunk = chunk
        out_features = out_features or in_features
        stages = stages or min(in_features, out_features)
        if in_features % stages or out_features % stages:
            raise ValueError(
                f"{stages} stages must divide both in_features ({in_features}) and out_features ({out_features})"
            )
        self.in_features, self.out_features, self.state_dim, self.stages = in_features, out_features, state_dim, stages
        mi, mo = in_features // stages, out_features // stages
        self.m_in, self.m_out = mi, mo
        d = causal_dims(stages, state_dim, mi, mo)
        e = anticausal_dims(stages, state_dim, mi, mo)  # e[j + 1] is the state entering stage j from above
        s = max(1, state_dim)
        self.d, self.e = d, e
        N = stages
        self.A = _Packed([(d[k + 1], d[k]) for k in range(N)], s, s)
        self.B = _Packed([(d[k + 1], mi) for k in range(N)], s, mi)
        self.C = _Packed([(mo, d[k]) for k in range(N)], mo, s)
        self.D = _Packed([(mo, mi) for _ in range(N)], mo, mi)
        self.E = _Packed([(e[j], e[j + 1]) for j in range(N)], s, s)  # z_{j−1} = E_j z_j + F_j u_j
        self.F = _Packed([(e[j], mi) for j in range(N)], s, mi)
        self.G = _Packed([(mo, e[j + 1]) for j in range(N)], mo, s)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        if init == "hankel_svd":
            self.reset_parameters(generator)
        elif init != "zeros":
            raise ValueError(f"unknown init {init!r}: hankel_svd or zeros")

    # ------------------------------------------------------------ initialisation

    def reset_parameters(self, generator: np.random.Generator | None = None) -> np.ndarray:
        """The original's initialisation: a Glorot-uniform dense T0, realised by Hankel SVDs truncated to the state
        dimensions; D_k are T0's diagonal blocks; a Glorot-uniform bias. Returns T0."""
        rng = generator or np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        limit = math.sqrt(6.0 / (self.in_features + self.out_features))
        T0 = rng.uniform(-limit, limit, (self.out_features, self.in_features))
        A, B, C = realise_lower(T0, self.stages, self.d)
        At, Bt, Ct = realise_lower(T0.T, self.stages, self.e)
        N, mi, mo = self.stages, self.m_in, self.m_out
        self.A.set(A)
        self.B.set(B)
        self.C.set(C)
        self.D.set([T0[k * mo : (k + 1) * mo, k * mi : (k + 1) * mi] for k in range(N)])
        # The upper part of T0 is the lower part of T0ᵀ transposed: G_i = Bᵗ_iᵀ, E_k = Aᵗ_kᵀ, F_j = Cᵗ_jᵀ.
        self.E.set([At[j].T for j in range(N)])
        self.F.set([Ct[j].T for j in range(N)])
        self.G.set([Bt[j].T for j in range(N)])
        if self.bias is not None:
            with torch.no_grad():
                bound = math.sqrt(6.0 / self.out_features)
                self.bias.copy_(torch.as_tensor(rng.uniform(-bound, bound, self.out_features), dtype=torch.float32))
        return T0

    # ------------------------------------------------------------ forward

    def padded_generators(self, stages: int):
        """The seven generator kinds as zero-padded per-stage tensors, extended by zero stages to ``stages``."""
        out = []
        for name in "ABCDEFG":
            g = getattr(self, name).padded()
            out.append(torch.nn.functional.pad(g, (0, 0, 0, 0, 0, stages - self.stages)))
        return out

    def chunk_blocks(self, chunk: int):
        """The operators of the chunked product with ``chunk`` stages per chunk (a power of two):

        local (chunks, chunk·m_out, chunk·m_in): the dense diagonal block of T for every chunk;
        K (chunks, 2s, chunk·m_in): a chunk's inputs → the causal and anticausal states leaving it;
        M (2, chunks·s, chunks·s): the causal (0) and anticausal (1) states leaving the chunks → the states entering
        them (block lower and block upper triangular);
        Ob (chunks, chunk·m_out, 2s): the two states entering a chunk → its outputs.
        With one chunk, only ``local`` (then T itself) is computed.
        """
        N, mi, mo = self.stages, self.m_in, self.m_out
        nC = -(-N // chunk)
        A, B, C, D, E, F, G = self.padded_generators(nC * chunk)
        # The anticausal system is the causal one in reversed stage order: stacked with the causal system, both go
        # through one set of doublings; its operators are brought back to the original order by flipping the chunks
        # and the stages inside each chunk (not the entries inside a stage's block).
        lower, K, P, Ob = _chunk_operators(
            torch.stack([A, E.flip(0)]), torch.stack([B, F.flip(0)]), torch.stack([C, G.flip(0)]), chunk
        )
        up = lower[1].view(nC, chunk, mo, chunk, mi).flip(0, 1, 3)
        diag = torch.diag_embed(D.view(nC, chunk, mo, mi).permute(0, 2, 3, 1)).permute(0, 3, 1, 4, 2)
        local = lower[0] + (up + diag).reshape(nC, chunk * mo, chunk * mi)
        if nC == 1:
            return local, None, None, None
        s = K.shape[-2]
        K = torch.cat([K[0], K[1].view(nC, s, chunk, mi).flip(0, 2).reshape(nC, s, chunk * mi)], 1)
        Ob = torch.cat([Ob[0], Ob[1].view(nC, chunk, mo, s).flip(0, 1).reshape(nC, chunk * mo, s)], 2)
        # One level up, the chunks form a system with A = P and B = C = I: its strictly lower part maps the states
        # leaving the chunks to the states entering them.
        padded = 1 << (nC - 1).bit_length()
        P = torch.nn.functional.pad(P, (0, 0, 0, 0, 0, padded - nC))
        eye = torch.eye(s, dtype=P.dtype, device=P.device).expand_as(P)
        M = _chunk_operators(P, eye, eye, padded)[0][:, 0, : nC * s, : nC * s]
        M = torch.stack([M[0], M[1].view(nC, s, nC, s).flip(0, 2).reshape(nC * s, nC * s)])
        return local, K, M, Ob

    def chunk_size(self) -> int:
        """Stages per chunk: ``self.chunk`` when set, else the measured rule of :func:`default_chunk`."""
        return self.chunk or default_chunk(self.stages, self.m_in, self.m_out, self.state_dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        lead = u.shape[:-1]
        u = u.reshape(-1, self.in_features)
        N, mi, mo = self.stages, self.m_in, self.m_out
        chunk = self.chunk_size()
        if chunk >= N:  # one chunk: the dense product
            y = torch.nn.functional.linear(u, self.dense(), self.bias)
            return y.reshape(*lead, self.out_features)
        local, K, M, Ob = self.chunk_blocks(chunk)
        nC, s = local.shape[0], K.shape[1] // 2
        uc = torch.nn.functional.pad(u, (0, nC * chunk * mi - self.in_features)).view(-1, nC, chunk * mi)
        # (chunks, batch, chunk·m_in), contiguous: with the chunk stride below the row stride, CPU bmm can fall back
        # to a much slower kernel
        uc = uc.transpose(0, 1).contiguous()
        y = torch.bmm(uc, local.transpose(1, 2))
        ends = torch.bmm(uc, K.transpose(1, 2))  # (chunks, batch, 2s)
        ends = ends.view(nC, -1, 2, s).permute(2, 1, 0, 3).reshape(2, -1, nC * s)  # (2, batch, chunks·s)
        starts = torch.bmm(ends, M.transpose(1, 2))
        starts = starts.view(2, -1, nC, s).permute(2, 1, 0, 3).reshape(nC, -1, 2 * s)
        y = torch.baddbmm(y, starts, Ob.transpose(1, 2))
        y = y.transpose(0, 1).reshape(-1, nC * chunk * mo)[:, : self.out_features]
        y = y.reshape(*lead, self.out_features)
        return y + self.bias if self.bias is not None else y

    def dense(self) -> torch.Tensor:
        """The matrix T (out × in), assembled from the generators in log₂ N merge steps (differentiable)."""
        chunk = 1 << max(0, (self.stages - 1).bit_length())
        local = self.chunk_blocks(chunk)[0][0]
        return local[: self.out_features, : self.in_features]

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, state_dim={self.state_dim}, stages={self.stages}, "
            f"blocks={self.m_out}×{self.m_in}"
        )


def realise_lower(T: np.ndarray, stages: int, dims: list[int]):
    """Generators (A_k, B_k, C_k) of T's strictly lower block part from truncated SVDs of its Hankel blocks
    (observability O_k = U√Σ, reachability R_k = √Σ Vᵀ; C_k, B_{k−1} their first blocks; A_k by shift invariance)."""
    n_out, n_in = T.shape
    mo, mi = n_out // stages, n_in // stages
    N = stages
    O, R = {}, {}
    for k in range(1, N):
        rows = T[k * mo :, : k * mi]
        H = np.concatenate([rows[:, (j - 1) * mi : j * mi] for j in range(k, 0, -1)], axis=1)  # columns k−1 … 0
        U, S, Vt = np.linalg.svd(H, full_matrices=False)
        r = dims[k]
        root = np.sqrt(S[:r])
        O[k], R[k] = U[:, :r] * root, root[:, None] * Vt[:r]
    A, B, C = [], [], []
    for k in range(N):
        C.append(O[k][:mo] if k in O else np.zeros((mo, 0)))
        B.append(R[k + 1][:, :mi] if (k + 1) in R else np.zeros((0, mi)))
        if k in O and (k + 1) in O:
            A.append(np.linalg.pinv(O[k + 1]) @ O[k][mo:])
        else:
            A.append(np.zeros((dims[k + 1], dims[k])))
    return A, B, C


def per_stage_forward(layer: SSSLinear, u: torch.Tensor) -> torch.Tensor:
    """The two recursions written stage by stage, like the original's Python loop: the reference the tests check
    :class:`SSSLinear` against, and the baseline of the SSS benchmark. Slow: O(N) interpreter steps per pass."""
    N, mi, mo = layer.stages, layer.m_in, layer.m_out
    blocks = {name: [] for name in "ABCDEFG"}
    for name in "ABCDEFG":
        packed = getattr(layer, name)
        # unbind first: slicing stage k out of the (N, r, c) tensor directly would make each slice's backward
        # allocate the whole tensor, O(N²) work the original (one parameter per stage) does not do
        blocks[name] = [g[:r, :c] for g, (r, c) in zip(packed.padded().unbind(0), packed.shapes)]
    U = u.reshape(-1, N, mi).unbind(1)
    y = [U[0].new_zeros(U[0].shape[0], mo) for _ in range(N)]
    x = U[0].new_zeros(U[0].shape[0], 0)
    for k in range(N):
        y[k] = y[k] + x @ blocks["C"][k].T + U[k] @ blocks["D"][k].T
        x = x @ blocks["A"][k].T + U[k] @ blocks["B"][k].T
    z = U[0].new_zeros(U[0].shape[0], 0)
    for j in reversed(range(N)):
        y[j] = y[j] + z @ blocks["G"][j].T
        z = z @ blocks["E"][j].T + U[j] @ blocks["F"][j].T
    out = torch.cat(y, 1)
    return out + layer.bias if layer.bias is not None else out
