"""Commands that change a tool's mode rather than the tool: scissors on the polygon tool (I) and the
superpixel scale (``,`` / ``.``).

They arrive as ``tool:<command>`` from the shortcut table, so the controller hands them here instead
of choosing a tool. The scissors toggle keeps one invariant the tool bar's check box relies on: it
is checked exactly when the polygon tool is active in scissors mode (another tool turns the mode
off, ``PolygonTool.suspend``), so every press of I flips both.
"""

from __future__ import annotations

from typing import Any

COMMANDS = frozenset({"scissors", "superpixel_coarser", "superpixel_finer"})


def run(controller: Any, command: str) -> None:
    """Run one of :data:`COMMANDS` on the controller's tools."""
    if command == "scissors":
        poly = controller.tools["polygon"]
        if controller.tool_name != "polygon":
            controller.set_tool("polygon")
            on = True
        else:
            on = not poly.scissors
        poly.set_scissors(on)
        controller.message("scissors on: segments follow image edges (Shift+click: straight)" if on
                           else "scissors off: straight polygon segments", "frame")
    elif command in ("superpixel_coarser", "superpixel_finer"):
        controller.tools["superpixel"].rescale(-1 if command == "superpixel_coarser" else 1)
