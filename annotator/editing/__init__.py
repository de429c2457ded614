"""Qt-free mask editing: operations on label maps, weight-free tools, undo history, edit session.

The GUI wires these to the canvas; everything here is plain numpy/OpenCV and testable headless.
Layout: ``operations`` (what an edit does to a label map: paint modes, erase, fill, move, delete,
copy; locks), ``tools`` (geometry/image -> mask: polygon, brush stroke, colour fill, GrabCut),
``sam_tool`` (SAM prompt state: clicks, box, 3 candidates, logits fed back), ``history`` (compressed
bounding-box patches, journaled), ``session`` (apply/undo/redo on an open video, write-behind).
"""

from annotator.editing.history import Command, FramePatch, History
from annotator.editing.mask_fixes import ReplaceTrackMask, cut_component, refine_with_grabcut, snap_outline
from annotator.editing.operations import (
    Change,
    CopyTrackFromFrame,
    DeleteTrackOnFrame,
    EditContext,
    EditError,
    Erase,
    FillRegion,
    MovePixels,
    Operation,
    Paint,
    PaintMode,
    Region,
    ReplaceLabel,
)
from annotator.editing.sam_tool import SamPrompt
from annotator.editing.scissors import EdgeScissors
from annotator.editing.session import EditSession, HistoryMismatch
from annotator.editing.superpixels import SuperpixelSet
from annotator.editing.tools import (
    GrabCutState,
    RingCheck,
    check_box,
    check_ring,
    clean_ring,
    flood_fill_mask,
    grabcut,
    polygon_mask,
    stroke_mask,
    validate_polygon,
)

__all__ = [
    "EdgeScissors", "SuperpixelSet",
    "Change", "Command", "CopyTrackFromFrame", "DeleteTrackOnFrame", "EditContext", "EditError", "EditSession",
    "Erase", "FillRegion", "FramePatch", "GrabCutState", "History", "HistoryMismatch", "MovePixels", "Operation",
    "Paint", "PaintMode", "Region", "ReplaceLabel", "RingCheck", "SamPrompt", "check_box", "check_ring",
    "clean_ring", "flood_fill_mask", "grabcut",
    "polygon_mask", "stroke_mask", "validate_polygon",
    "ReplaceTrackMask", "cut_component", "refine_with_grabcut", "snap_outline",
]
