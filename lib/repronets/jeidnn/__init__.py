"""Paper 4: JEI-DNN, jointly learned early exits and gates on a T2T-ViT backbone.

Regol, Chataoui, Coates, ICLR 2024.
"""

from .dynamic import DynamicNet
from .t2t_vit import T2TViT, load_pretrained, t2t_vit_7, t2t_vit_14

__all__ = ["DynamicNet", "T2TViT", "load_pretrained", "t2t_vit_7", "t2t_vit_14"]
