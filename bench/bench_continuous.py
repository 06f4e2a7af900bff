"""Paper 2: what integrating costs. One SGD training step (forward, backward, update; batch 128, CIFAR-sized
32×32×3 input) of ContinuousNet 2-2-2 with Euler, midpoint and classic RK4, against ResNet-20 (the baseline).
Euler takes one residual evaluation per unit, like the ResNet; midpoint two, RK4 four.
"""

import torch
import torch.nn.functional as F
from repronets.continuous.models import continuousnet, resnet_v2
from repronets.core.train import resolve_device
from runner import Suite


def suite() -> Suite:
    device = resolve_device("auto")
    x = torch.rand(128, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (128,), device=device)

    def step(model):
        model = model.to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

        def run():
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return run

    torch.manual_seed(0)
    s = Suite("continuous_step", f"one SGD step, batch 128 of 32×32×3 ({device})", unit="step", min_run_time=3.0)
    s.add("ResNet-20 (v2), 272k parameters", step(resnet_v2(20)), baseline=True)
    s.add("ContinuousNet 2-2-2 Euler, 273k", step(continuousnet(2, "euler")))
    s.add("ContinuousNet 2-2-2 midpoint", step(continuousnet(2, "midpoint")))
    s.add("ContinuousNet 2-2-2 RK4-classic", step(continuousnet(2, "rk4_classic")))
    return s
