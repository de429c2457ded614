"""Dataset formats: VIPSeg (``vipseg``), YouTube-VIS / LV-VIS (``ytvis``), labelme (``labelme_json``),
Cityscapes-VPS (``cityscapes_vps``) and VSPW (``vspw``, import only).

Each module exports a project (atomically, via a staging folder: :mod:`.output`) and/or imports a
dataset into a project (removing everything it created if any input is bad). Callers find a
format by name in :mod:`.registry`, the one list. No Qt here.
"""

from annotator.formats.registry import EXPORT_FORMATS, FORMATS, IMPORT_FORMATS

__all__ = ["EXPORT_FORMATS", "FORMATS", "IMPORT_FORMATS"]
