"""Dataset formats: VIPSeg (``vipseg``), YouTube-VIS / LV-VIS (``ytvis``) and labelme (``labelme_json``).

Each module exports a project (atomically, via a staging folder) and imports a dataset into a
project (removing everything it created if any input is bad). No Qt here.
"""

FORMATS = ("vipseg", "ytvis", "labelme", "cityscapes-vps", "vspw")
