"""Paper 1: time-variable learning, ResNets and fractional DNNs whose step sizes τ are trained.

E. Herberg, R. Herzog, F. Köhne, arXiv 2306.16111 (building on arXiv 2204.08528). The models and the pieces of the
method (regulariser, projection of a dependent last τ, adaptive pruning) need torch only; ``ARCHITECTURES`` builds
either model by name. The experiments of the paper (grid, runs, the original's result files) are in
:mod:`repronets.tau.experiment`.
"""

from .models import ARCHITECTURES, FracDNN, TauBlock, TauResNet
from .training import AdaptivePruning, DependentLastTau, PruningError, TauTracker, objective, tau_penalty

__all__ = [
    "ARCHITECTURES",
    "TauResNet",
    "FracDNN",
    "TauBlock",
    "objective",
    "tau_penalty",
    "DependentLastTau",
    "AdaptivePruning",
    "PruningError",
    "TauTracker",
]
