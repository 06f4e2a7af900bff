"""Paper 4: JEI-DNN, jointly learned early exits and gates on a T2T-ViT backbone.

F. Regol, J. Chataoui, M. Coates, ICLR 2024. The backbone (with the official checkpoint's loader), the dynamic
network (exit classifiers, gates, the exit rule, early-exit inference), its costs, its metrics and the exit policies
(gates, budgeted confidence thresholds, :mod:`.policies`) need torch and numpy only; training phases, baselines
and the experiments are in :mod:`repronets.jeidnn.experiment`.
"""

from . import metrics, policies
from .cost import exit_costs, mean_cost
from .dynamic import DynamicNet, exit_probabilities, exit_scores, first_exit, gate_features, oracle_exits
from .t2t_vit import T2TViT, load_pretrained, t2t_vit_7, t2t_vit_14

__all__ = [
    "T2TViT",
    "t2t_vit_7",
    "t2t_vit_14",
    "load_pretrained",
    "DynamicNet",
    "gate_features",
    "exit_scores",
    "exit_probabilities",
    "first_exit",
    "oracle_exits",
    "exit_costs",
    "mean_cost",
    "metrics",
    "policies",
]
