"""Canvas tools: one small class per tool (pointer events -> preview + one engine call)."""

from annotator.gui.tools.base import PointerEvent, Preview, Tool, ToolHost
from annotator.gui.tools.brush import BrushTool, EraserTool
from annotator.gui.tools.fill import FillTool
from annotator.gui.tools.grabcut import GrabCutTool
from annotator.gui.tools.polygon import PolygonTool
from annotator.gui.tools.sam import SamBoxTool, SamClickTool
from annotator.gui.tools.superpixel import SuperpixelTool

#: tool classes in tool-bar order
TOOL_CLASSES: list[type[Tool]] = [PolygonTool, BrushTool, EraserTool, FillTool, GrabCutTool, SuperpixelTool,
                                  SamClickTool, SamBoxTool]

__all__ = ["TOOL_CLASSES", "BrushTool", "EraserTool", "FillTool", "GrabCutTool", "PointerEvent", "PolygonTool",
           "Preview", "SamBoxTool", "SamClickTool", "SuperpixelTool", "Tool", "ToolHost"]
