"""Clip-PanoFCN (VIPSeg's clip-based video panoptic baseline) in plain PyTorch, CPU-capable.

Modules: ``layers`` (frozen BN, detectron2-style conv, DCNv2 via grid_sample), ``backbone``
(ResNet + FPN P2-P7), ``heads`` (semantic FPN, feature encoder, position and kernel heads),
``network`` (the model and its released configuration), ``checkpoint`` (strict loading, saving),
``inference`` (one clip: kernels, fusion, masks, panoptic merge), ``tracking`` (identity across
clips), ``categories`` (model channels <-> taxonomy ids), ``video`` (a whole video, clips in a
process pool). The annotator-facing driver is :mod:`annotator.stages.preannotate`.
"""

from models.clip_panofcn.network import ClipPanoFCN, ClipPanoFCNConfig, build_model

__all__ = ["ClipPanoFCN", "ClipPanoFCNConfig", "build_model"]
