"""Sequentially semiseparable (SSS) weight matrices, trained by backpropagation through states
(Kissel et al., EPIA 2022; shared/papers/sss.md §1).

``SSSLinear(in_features, out_features, state_dim, stages)`` computes y = T·u + b, where T (out × in) is given by its
SSS generators over N stages (input blocks of ``in/N``, output blocks of ``out/N`` entries):

    T_kk = D_k,   T_ij = C_i A_{i−1}…A_{j+1} B_j  (i > j),   T_ij = G_i E_{i+1}…E_{j−1} F_j  (i < j)

computed by two state recursions, causal x_{k+1} = A_k x_k + B_k u_k (y_k += C_k x_k) and anticausal
z_{j−1} = E_j z_j + F_j u_j (y_j += G_j z_j); gradients are autograd through them. State dimensions follow the
original's profile d_k = min(s, rank of Hankel block k): zero at both ends.

Why the recursion is written as it is: the original loops over the N stages in Python (about ten tiny matrix
products per stage), O(N) interpreter steps per pass. Here each recursion is a chunked linear scan: stages are cut
into ⌈√N⌉ chunks, states are propagated inside all chunks at once and then across chunk boundaries, about 3√N
batched steps per pass, with O(batch·n·s²) work. The generators live in flat parameters (exact parameter counts, one
tensor per kind) and are scattered into zero-padded per-stage tensors for each pass.
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


def linear_scan(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """States x_0 … x_{N−1} of x_{k+1} = A_k x_k + b_k, x_0 = 0; A (N, s, s), b (batch, N, s) → (batch, N, s).

    Chunked: within each of C chunks of L stages the states are run from zero (all chunks at once, L steps), with the
    chunk's prefix products of A; the true chunk-start states follow by a scan over the C chunk ends; a last batched
    step adds their propagated contribution to every state.
    """
    batch, n, s = b.shape
    L = max(1, math.isqrt(n - 1) + 1) if n > 1 else 1
    C = -(-n // L)
    pad = C * L - n
    if pad:
        A = torch.cat([A, A.new_zeros(pad, s, s)])
        b = torch.cat([b, b.new_zeros(batch, pad, s)], 1)
    A = A.view(C, L, s, s)
    b = b.view(batch, C, L, s)
    h = b.new_zeros(batch, C, s)
    P = torch.eye(s, dtype=A.dtype, device=A.device).expand(C, s, s)
    local, prefix = [], []
    for l in range(L):
        local.append(h)
        prefix.append(P)
        h = torch.einsum("cij,bcj->bci", A[:, l], h) + b[:, :, l]
        P = A[:, l] @ P
    starts = [b.new_zeros(batch, s)]
    for c in range(C - 1):
        starts.append(torch.einsum("ij,bj->bi", P[c], starts[-1]) + h[:, c])
    starts = torch.stack(starts, 1)                                              # (batch, C, s)
    x = torch.stack(local, 2) + torch.einsum("lcij,bcj->bcli", torch.stack(prefix), starts)
    return x.reshape(batch, C * L, s)[:, :n]


class SSSLinear(nn.Module):
    """y = T·u + b with T in SSS form (see the module docstring). ``stages`` defaults to ``in_features`` (m = 1)."""

    def __init__(self, in_features: int, out_features: int | None = None, state_dim: int = 1, stages: int | None = None,
                 bias: bool = True, init: str = "hankel_svd", generator: np.random.Generator | None = None):
        super().__init__()
        out_features = out_features or in_features
        stages = stages or min(in_features, out_features)
        if in_features % stages or out_features % stages:
            raise ValueError(f"{stages} stages must divide both in_features ({in_features}) and out_features "
                             f"({out_features})")
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
        self.E = _Packed([(e[j], e[j + 1]) for j in range(N)], s, s)      # z_{j−1} = E_j z_j + F_j u_j
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
        self.D.set([T0[k * mo:(k + 1) * mo, k * mi:(k + 1) * mi] for k in range(N)])
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

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        batch = u.shape[:-1]
        u = u.reshape(-1, self.stages, self.m_in)
        B, F_ = self.B.padded(), self.F.padded()
        x = linear_scan(self.A.padded(), torch.einsum("kij,bkj->bki", B, u))
        # Anticausal: the same recursion over the stages in reverse order; after flipping back, z[:, j] is the state
        # entering stage j from above (built from the inputs of stages j+1 … N−1).
        z = linear_scan(self.E.padded().flip(0), torch.einsum("kij,bkj->bki", F_, u).flip(1)).flip(1)
        y = (torch.einsum("kij,bkj->bki", self.C.padded(), x) + torch.einsum("kij,bkj->bki", self.D.padded(), u)
             + torch.einsum("kij,bkj->bki", self.G.padded(), z))
        y = y.reshape(*batch, self.out_features)
        return y + self.bias if self.bias is not None else y

    def dense(self) -> torch.Tensor:
        """The matrix T (out × in), assembled by applying the layer to the identity (differentiable)."""
        eye = torch.eye(self.in_features, dtype=self.D.values.dtype, device=self.D.values.device)
        y = self.forward(eye)
        if self.bias is not None:
            y = y - self.bias
        return y.T

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, state_dim={self.state_dim}, stages={self.stages}, "
                f"blocks={self.m_out}×{self.m_in}")


def realise_lower(T: np.ndarray, stages: int, dims: list[int]):
    """Generators (A_k, B_k, C_k) of T's strictly lower block part from truncated SVDs of its Hankel blocks
    (observability O_k = U√Σ, reachability R_k = √Σ Vᵀ; C_k, B_{k−1} their first blocks; A_k by shift invariance)."""
    n_out, n_in = T.shape
    mo, mi = n_out // stages, n_in // stages
    N = stages
    O, R = {}, {}
    for k in range(1, N):
        rows = T[k * mo:, :k * mi]
        H = np.concatenate([rows[:, (j - 1) * mi:j * mi] for j in range(k, 0, -1)], axis=1)  # columns k−1 … 0
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
        padded = packed.padded()
        blocks[name] = [padded[k, :r, :c] for k, (r, c) in enumerate(packed.shapes)]
    U = u.reshape(-1, N, mi)
    y = [U.new_zeros(U.shape[0], mo) for _ in range(N)]
    x = U.new_zeros(U.shape[0], 0)
    for k in range(N):
        y[k] = y[k] + x @ blocks["C"][k].T + U[:, k] @ blocks["D"][k].T
        x = x @ blocks["A"][k].T + U[:, k] @ blocks["B"][k].T
    z = U.new_zeros(U.shape[0], 0)
    for j in reversed(range(N)):
        y[j] = y[j] + z @ blocks["G"][j].T
        z = z @ blocks["E"][j].T + U[:, j] @ blocks["F"][j].T
    out = torch.cat(y, 1)
    return out + layer.bias if layer.bias is not None else out
