"""Paper 3: sequentially semiseparable weight matrices trained through their states.

M. Kissel, M. Gottwald, B. Gjeroska, P. Paukner, K. Diepold, EPIA 2022. The layer and the benchmark models need
torch and numpy only; the benchmark grid and protocol are in :mod:`repronets.sss.experiment`.
"""

from .layer import SSSLinear, causal_dims, per_stage_forward
from .models import Rank1Linear, build, hankel_ranks, model_keys

__all__ = ["SSSLinear", "Rank1Linear", "build", "causal_dims", "hankel_ranks", "model_keys", "per_stage_forward"]
