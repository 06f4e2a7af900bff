"""Paper 3: sequentially semiseparable weight matrices (Kissel et al., EPIA 2022): the layer, the benchmark models,
the benchmark grid."""

from .layer import SSSLinear, causal_dims, per_stage_forward
from .models import Rank1Linear, build, count_parameters, model_keys

__all__ = ["SSSLinear", "Rank1Linear", "build", "causal_dims", "count_parameters", "model_keys", "per_stage_forward"]
