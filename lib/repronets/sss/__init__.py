"""Paper 3: sequentially semiseparable weight matrices (Kissel et al., EPIA 2022). So far: the layer."""
from .layer import SSSLinear, causal_dims, per_stage_forward

__all__ = ["SSSLinear", "causal_dims", "per_stage_forward"]
