"""SAM 2 / SAM 2.1 from the ``sam2`` package: the click/box tool's engine and the video engine.

Why a package apart from :mod:`models.sam`: SAM 2 is an optional extra (``[sam2]``); without the
package or a checkpoint everything else works and the status bar says why SAM 2 is off. Nothing
here imports torch or ``sam2`` at import time (the window starts without them).

Modules: ``checkpoint`` (the eight released configurations, told apart by the file; the ``sam2``
kind's checks, registered in :mod:`models.kinds`), ``build`` (the package's builder and configs,
strict loading, device and bfloat16 autocast), ``image`` (:class:`Sam2ImageModel`, the SAM
tool's model protocol on ``SAM2ImagePredictor``), ``video`` (:class:`Sam2VideoEngine`, one gap
at a time on ``SAM2VideoPredictor``), ``select`` (which SAM the tool runs: setting ``sam_model``).
"""

from models.sam2.build import build_network, default_device, load_network, sam2_installed
from models.sam2.checkpoint import CONFIGS, KIND, SIZES, VERSIONS, config_name, identify
from models.sam2.image import Sam2ImageModel, open_sam2_engine, sam2_availability
from models.sam2.select import SAM_MODELS, open_tool_engine, tool_availability
from models.sam2.video import Sam2VideoEngine, VideoConfig

__all__ = [
    "CONFIGS", "KIND", "SAM_MODELS", "SIZES", "VERSIONS", "Sam2ImageModel", "Sam2VideoEngine", "VideoConfig",
    "build_network", "config_name", "default_device", "identify", "load_network", "open_sam2_engine",
    "open_tool_engine", "sam2_availability", "sam2_installed", "tool_availability",
]
