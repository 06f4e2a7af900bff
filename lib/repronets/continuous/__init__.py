"""Paper 2: ContinuousNet, continuous-in-depth ResNets (Queiruga et al., arXiv 2008.02389)."""

from .blocks import ODEBlock, manifestation, ode_blocks, refine
from .experiment import ROWS, Params, run, train_one
from .integrators import SCHEMES, odeint, stage_pieces
from .models import ContinuousNet, continuousnet, count_parameters, resnet_v2, wide_continuousnet, wide_resnet

__all__ = [
    "ODEBlock",
    "manifestation",
    "ode_blocks",
    "refine",
    "ROWS",
    "Params",
    "run",
    "train_one",
    "SCHEMES",
    "odeint",
    "stage_pieces",
    "ContinuousNet",
    "continuousnet",
    "count_parameters",
    "resnet_v2",
    "wide_continuousnet",
    "wide_resnet",
]
