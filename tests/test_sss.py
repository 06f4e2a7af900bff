"""Paper 3, the SSS layer: checks of docs/papers/sss.md §1 and §7."""

import numpy as np
import pytest
import torch
from repronets.core.counting import count_parameters
from repronets.sss import reference
from repronets.sss.layer import SSSLinear, causal_dims, per_stage_forward


@pytest.mark.parametrize(
    "n_in, n_out, s, stages",
    [
        (100, 100, 1, 100),
        *[(50, 50, s, 50) for s in range(1, 6)],
        (100, 100, 3, 10),
        (64, 64, 4, 16),
        (24, 36, 2, 12),
        (30, 10, 5, 5),
        (7, 7, 1, 7),
        (1, 1, 2, 1),
    ],
)
def test_recursions_equal_the_dense_matrix_and_a_per_stage_loop(n_in, n_out, s, stages):
    torch.manual_seed(0)
    layer = SSSLinear(n_in, n_out, s, stages, generator=np.random.default_rng(0)).double()
    u = torch.randn(5, n_in, dtype=torch.float64)
    T = layer.dense()
    assert T.shape == (n_out, n_in)
    assert torch.allclose(layer(u), u @ T.T + layer.bias, atol=1e-12)
    assert torch.allclose(layer(u), per_stage_forward(layer, u), atol=1e-12)


def test_gradients_are_those_of_the_dense_product():
    torch.manual_seed(1)
    layer = SSSLinear(40, 40, 3, generator=np.random.default_rng(1)).double()
    u = torch.randn(6, 40, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 40, dtype=torch.float64)
    (layer(u) * w).sum().backward()
    grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
    grad_u = u.grad.clone()
    for p in layer.parameters():
        p.grad = None
    u.grad = None
    ((u @ layer.dense().T + layer.bias) * w).sum().backward()
    assert torch.allclose(grad_u, u.grad, atol=1e-10)
    for n, p in layer.named_parameters():
        assert torch.allclose(grads[n], p.grad, atol=1e-10), n
    assert torch.autograd.gradcheck(
        lambda v: SSSLinear(6, 6, 2, generator=np.random.default_rng(2)).double()(v),
        (torch.randn(2, 6, dtype=torch.float64, requires_grad=True),),
    )


def test_parameter_counts_of_the_reference():
    for s, expected in reference.LAYER_PARAMETERS_N50.items():  # bias included
        assert count_parameters(SSSLinear(50, state_dim=s), trainable_only=False) == expected, s
    for n, by_state in reference.LAYER_WEIGHTS.items():
        for s, expected in by_state.items():
            layer = SSSLinear(n, state_dim=s, bias=False, init="zeros")
            assert count_parameters(layer, trainable_only=False) == expected, (n, s)
    for (n, s, stages), expected in reference.LAYER_PARAMETERS.items():
        assert count_parameters(SSSLinear(n, state_dim=s, stages=stages), trainable_only=False) == expected
    assert count_parameters(SSSLinear(37, state_dim=1), trainable_only=False) == 8 * 37 - 8  # m = s = 1: 8n − 8


def test_state_dimension_profile():
    assert causal_dims(50, 3, 1, 1)[:5] == [0, 1, 2, 3, 3] and causal_dims(50, 3, 1, 1)[-4:] == [3, 2, 1, 0]


def test_hankel_svd_initialisation():
    layer = SSSLinear(20, state_dim=10)
    T0 = layer.reset_parameters(np.random.default_rng(3))
    T = layer.dense().detach().double().numpy()
    assert np.abs(T - T0).max() < 1e-5  # s large enough: the realisation reproduces T0
    assert np.array_equal(layer.D.values.detach().numpy(), np.diag(T0).astype(np.float32))  # D_k: T0's diagonal
    ratios = {s: [] for s in reference.INIT_NORM_RATIOS}
    for seed in range(5):
        for s in ratios:
            layer = SSSLinear(50, state_dim=s)
            T0 = layer.reset_parameters(np.random.default_rng(seed))
            T = layer.dense().detach().double().numpy()
            ratios[s].append((np.linalg.norm(T) / np.linalg.norm(T0), np.linalg.norm(T0 - T) / np.linalg.norm(T0)))
            # every off-diagonal Hankel block of the initial matrix has rank at most s
            k = 25
            assert np.linalg.matrix_rank(T[k:, :k], tol=1e-5) <= s
    for s, (norm, error) in reference.INIT_NORM_RATIOS.items():
        mean = np.mean(ratios[s], axis=0)
        assert mean[0] == pytest.approx(norm, abs=0.05) and mean[1] == pytest.approx(error, abs=0.05)
    bound = np.sqrt(6 / 50)
    assert 0.2 < float(layer.bias.detach().abs().max()) <= bound  # Glorot, not zero


@pytest.mark.parametrize("n_in, n_out, stages", [(50, 50, 50), (24, 36, 12), (40, 40, 10), (33, 33, 33)])
def test_every_chunk_size_gives_the_same_product(n_in, n_out, stages):
    layer = SSSLinear(n_in, n_out, 3, stages, generator=np.random.default_rng(5)).double()
    u = torch.randn(4, n_in, dtype=torch.float64)
    expected = per_stage_forward(layer, u)
    for chunk in (1, 2, 4, 8, 16, 64):
        layer.chunk = chunk
        assert torch.allclose(layer(u), expected, atol=1e-12), chunk
    with pytest.raises(ValueError, match="power of two"):
        SSSLinear(8, chunk=3)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="stages must divide"):
        SSSLinear(10, 12, 2, stages=4)
