"""Paper 3: forward + backward of the SSS layer (batch 256, m = 1) against nn.Linear (the baseline) and against a
per-stage Python loop like the original's, for several n and state dimensions s.

The generators get random values (timing does not depend on them): the Hankel-SVD initialisation does one SVD per
cut, O(N·n³), which takes minutes beyond n ≈ 1000."""

import torch
from repronets.sss.experiment import random_sss
from repronets.sss.layer import per_stage_forward
from runner import Suite


def suites():
    out = []
    for n in (64, 256, 1024, 4096):
        u = torch.randn(256, n, requires_grad=True)

        def step(module_fn, u=u):
            def run():
                module_fn(u).sum().backward()

            return run

        s = Suite(
            f"sss_n{n}",
            f"forward + backward, batch 256, n = {n}, m = 1",
            unit="pass",
            min_run_time=1.0 if n < 4096 else 2.0,
        )
        dense = torch.nn.Linear(n, n)
        s.add(f"nn.Linear {n}×{n}", step(dense), baseline=True)
        for state in (1, 2, 4):
            layer = random_sss(n, state)
            s.add(f"SSS s={state} (chunked)", step(layer))
        if n <= 1024:
            loop_layer = random_sss(n, 4)
            s.add("SSS s=4, per-stage loop (as the original)", step(lambda v, m=loop_layer: per_stage_forward(m, v)))
        out.append(s)
    return out


SUITES = [lambda s=s: s for s in suites()]
