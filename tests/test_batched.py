"""repronets.core.members: R models run as one are each their own model (forward, gradient, optimizer step, frozen
tensors), within float tolerance: vmap's batched matrix products sum in another order than one model's."""

import pytest
import torch
import torch.nn.functional as F
from repronets.core.members import Members
from repronets.tau.models import TauResNet

TOL = dict(atol=1e-6, rtol=1e-5)


def three_modes():
    """Trainable τ, the released "fixed" (τ0 a buffer), every τ a buffer: one structure of names, three roles."""
    out = []
    for seed, (trainable, fixed) in enumerate([(True, "first"), (False, "first"), (False, "all")]):
        torch.manual_seed(seed)
        out.append(TauResNet(16, 8, 3, 4, T=1.0, tau_trainable=trainable, fixed=fixed))
    return out


def test_members_compute_each_models_forward_and_step_and_keep_frozen_tensors():
    models = three_modes()
    members = Members(models)
    x, y = torch.randn(3, 5, 16), torch.randint(0, 4, (3, 5))
    out = members(x)
    assert out.shape == (3, 5, 4)
    for r, m in enumerate(models):
        torch.testing.assert_close(out[r], m(x[r]), **TOL)
    torch.testing.assert_close(members(x[0], shared=True)[2], models[2](x[0]), **TOL)

    lr, momentum, decay = 0.1, 0.9, 0.01  # weight decay and momentum would move a frozen τ were it not restored
    opt = torch.optim.SGD(members.parameters(), lr=lr, momentum=momentum, weight_decay=decay)
    own = [torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=lr, momentum=momentum,
                           weight_decay=decay) for m in models]  # fmt: skip
    for _ in range(3):
        out = members(x)
        loss = sum(F.cross_entropy(out[r], y[r]) for r in range(3))  # members' losses are independent
        opt.zero_grad()
        loss.backward()
        opt.step()
        members.restore_frozen_()
        for r, (m, o) in enumerate(zip(models, own)):
            o.zero_grad()
            F.cross_entropy(m(x[r]), y[r]).backward()
            o.step()
    for r, m in enumerate(models):
        state = members.state_dict(r)
        for name, value in {**dict(m.named_parameters()), **dict(m.named_buffers())}.items():
            torch.testing.assert_close(state[name], value.detach(), **TOL, msg=f"member {r}: {name}")
    assert torch.equal(members.state_dict(2)["blocks.1.tau"], torch.tensor(0.25))  # every τ fixed: untouched
    assert not torch.equal(members.state_dict(1)["blocks.1.tau"], torch.tensor(0.25))  # released mode: trained
    assert torch.equal(members.state_dict(1)["blocks.0.tau"], torch.tensor(0.25))  # …but not its τ0


def test_a_frozen_block_stays_as_it_was_in_its_member_only():
    members = Members(three_modes())
    before = [members.state_dict(r) for r in range(3)]
    members.freeze_(0, ["blocks.2.linear.weight"])
    opt = torch.optim.SGD(members.parameters(), lr=0.5)
    members(torch.randn(3, 5, 16)).square().sum().backward()
    opt.step()
    members.restore_frozen_()
    assert torch.equal(members.state_dict(0)["blocks.2.linear.weight"], before[0]["blocks.2.linear.weight"])
    assert not torch.equal(members.state_dict(1)["blocks.2.linear.weight"], before[1]["blocks.2.linear.weight"])


def test_members_of_different_structures_are_refused():
    with pytest.raises(ValueError, match="member 1 differs"):
        Members([TauResNet(16, 8, 3, 4), TauResNet(16, 8, 2, 4)])
