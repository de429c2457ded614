"""Fill: click a region to give it the active class/track; the region is previewed on hover.

A click fills the connected region of equal label under the pointer (a void area, a hole, one
island of a track) - the quickest way to give the remaining background a stuff class. Shift+click
fills by colour instead (pixels of similar colour, void ones only). The hover preview waits 80 ms
after the pointer stops (X-AnyLabeling's debounce), so moving the mouse stays cheap.
"""

from __future__ import annotations

from PyQt5.QtCore import QTimer

from annotator import panoptic
from annotator.editing import EditError, Region, flood_fill_mask
from annotator.editing.operations import connected_region, pixel_of
from annotator.gui.tools.base import PointerEvent, Preview, Tool

COLOUR_TOLERANCE = 12.0
HOVER_MS = 80


class FillTool(Tool):
    name = "fill"
    title = "Fill"

    def __init__(self, host) -> None:
        super().__init__(host)
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(HOVER_MS)
        self._timer.timeout.connect(self._hover_preview)
        self._hover: PointerEvent | None = None

    def region(self, ev: PointerEvent) -> Region:
        label = self.host.label()
        if ev.shift:
            return flood_fill_mask(self.host.image(), ev.point, COLOUR_TOLERANCE,
                                   within=label == panoptic.VOID)
        x, y = pixel_of(ev.point, label.shape, "fill")
        return connected_region(label == label[y, x], (x, y))

    def move(self, ev: PointerEvent) -> None:
        self._hover = ev
        self._timer.start()

    def _hover_preview(self) -> None:
        if self._hover is None:
            return
        try:
            region = self.region(self._hover)
        except EditError:
            self.host.show_preview(None)
            return
        self.host.show_preview(Preview(mask=region, color=self.host.preview_color(),
                                       text="fill: click to give this region the active class"
                                            " (Shift: by colour)"))

    def press(self, ev: PointerEvent) -> None:
        if ev.button != "left":
            return
        self._timer.stop()
        try:
            if ev.shift:
                self.host.paint(self.region(ev), "colour fill")
            else:
                self.host.fill(ev.point, "fill")
        except EditError as e:
            self.host.message(str(e))
        self.host.show_preview(None)

    def cancel(self) -> bool:
        self._timer.stop()
        self._hover = None
        return False

    def deactivate(self) -> None:
        self._timer.stop()
        super().deactivate()
