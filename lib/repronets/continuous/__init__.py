"""Paper 2: ContinuousNet, continuous-in-depth ResNets (Queiruga et al., arXiv 2008.02389).

ODE blocks with weights piecewise constant over depth-time, fixed-step integrators, refinement and manifestation,
and the paper's networks and baselines, by name in :data:`MODELS`: torch only. The table experiments are in
:mod:`repronets.continuous.experiment`.
"""

from .blocks import ODEBlock, manifestation, ode_blocks, refine
from .integrators import SCHEMES, odeint, stage_pieces
from .models import MODELS, ContinuousNet, continuousnet, resnet_v2, wide_continuousnet, wide_resnet
from .training import Refinement

__all__ = [
    "ODEBlock",
    "manifestation",
    "ode_blocks",
    "refine",
    "Refinement",
    "SCHEMES",
    "odeint",
    "stage_pieces",
    "MODELS",
    "ContinuousNet",
    "continuousnet",
    "wide_continuousnet",
    "resnet_v2",
    "wide_resnet",
]
