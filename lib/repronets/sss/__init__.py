"""Paper 3: sequentially semiseparable weight matrices trained through their states.

M. Kissel, M. Gottwald, B. Gjeroska, P. Paukner, K. Diepold, EPIA 2022. The layer and the benchmark models need
torch and numpy only; the benchmark grid and protocol are in :mod:`repronets.sss.experiment`.
"""

from .layer import SSSLinear, causal_dims, per_stage_forward
from .models import (
    HIDDEN_LAYERS,
    ConvFeatures,
    ConvNet,
    Rank1Linear,
    TwoHiddenLayerNet,
    build,
    hankel_ranks,
    model_keys,
)

__all__ = [
    "SSSLinear",
    "Rank1Linear",
    "HIDDEN_LAYERS",
    "TwoHiddenLayerNet",
    "ConvFeatures",
    "ConvNet",
    "build",
    "model_keys",
    "causal_dims",
    "hankel_ranks",
    "per_stage_forward",
]
