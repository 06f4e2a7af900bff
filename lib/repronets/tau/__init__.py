"""Paper 1: time-variable learning, ResNets and fractional DNNs whose step sizes τ are trained."""

from .experiment import Params, epochs_to, export, grid, original_record, run, train_one
from .models import FracDNN, TauBlock, TauResNet, count_parameters
from .training import AdaptivePruning, DependentLastTau, PruningError, TauTracker, objective, tau_penalty

__all__ = [
    "Params",
    "run",
    "grid",
    "train_one",
    "export",
    "original_record",
    "epochs_to",
    "TauResNet",
    "FracDNN",
    "TauBlock",
    "count_parameters",
    "objective",
    "tau_penalty",
    "DependentLastTau",
    "AdaptivePruning",
    "PruningError",
    "TauTracker",
]
