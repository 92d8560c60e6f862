"""ProST networks: the 3-D feature CNN and the 2-D similarity heads (MICCAI and journal).

`FeatureVolumeNet` turns a CT into a 3-channel feature volume; the renderer projects it; a head
(`EmbeddingHead` or `CrossAttentionHead`, by name through `get_head`) scores the projection
against the X-ray; `ProSTNetwork` holds both, `ProSTSimilarity` binds it to a CT and a C-arm.
Every operation has second derivatives, so a loss on the score's gradient
with respect to the pose trains the weights.
"""

from xrender.similarity.prost.crossvit import CrossAttentionHead
from xrender.similarity.prost.embedding import EmbeddingHead
from xrender.similarity.prost.features import FeatureVolumeNet
from xrender.similarity.prost.heads import HEADS, available_heads, describe_parameters, get_head, parameter_count
from xrender.similarity.prost.similarity import NETWORK_FORMAT, ProSTNetwork, ProSTSimilarity, standardize

__all__ = [
    "HEADS",
    "NETWORK_FORMAT",
    "CrossAttentionHead",
    "EmbeddingHead",
    "FeatureVolumeNet",
    "ProSTNetwork",
    "ProSTSimilarity",
    "available_heads",
    "describe_parameters",
    "get_head",
    "parameter_count",
    "standardize",
]
