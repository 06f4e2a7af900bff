"""Notebook 00: the data every paper uses, and reference baselines on it (softmax regression, a one-hidden-layer
MLP), trained with the τ paper's protocol. The models need torch only; the runs are in
:mod:`repronets.baselines.experiment` (``python -m repronets.baselines``).
"""

from .models import MODELS, mlp, softmax

__all__ = ["MODELS", "softmax", "mlp"]
