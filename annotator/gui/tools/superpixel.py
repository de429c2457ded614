"""Superpixel paint: a click or a drag paints the whole superpixels under it (issue 24, item 2).

For stuff and large regions (sky, road, wall, grass): a few strokes give edges that follow the
image. Painting goes through the host exactly as the brush does (``host.paint`` with the active
track and paint mode, one undo step per stroke); a right drag or Ctrl+drag erases whole
superpixels. Near the pointer the canvas shows the superpixel boundaries and fills the superpixel
a click would take. ``,`` / ``.`` pick a coarser / finer scale (``annotator.editing.SuperpixelSet``,
scales coarse to fine). The superpixels of the shown frame are computed off the GUI thread
(``annotator.gui.tool_features``), the shown scale first; until they are ready the tool says so
and a click paints nothing.
"""

from __future__ import annotations

import math

import numpy as np

from annotator.editing import Region
from annotator.gui.tool_features import features_of, shown_frame
from annotator.gui.tools.base import Point, PointerEvent, Preview, Tool

#: the boundary window around the pointer: this many mean superpixel sizes each way (at least
#: ``MIN_HALF_PX``), enough to see where the next superpixels end without covering the frame
HALF_SIZES = 2.5
MIN_HALF_PX = 40
DEFAULT_SCALE = 1  # the middle of the three default scales

HINT = ("superpixels: click or drag to paint whole superpixels (right drag or Ctrl+drag erases); "
        ", coarser  . finer")


class SuperpixelTool(Tool):
    name = "superpixel"
    title = "Superpixels"

    def __init__(self, host) -> None:
        super().__init__(host)
        self.scale = DEFAULT_SCALE
        self._last: Point | None = None
        self._taken: set[int] = set()
        self._erase_stroke = False
        self._hover: Point | None = None
        features = features_of(host)
        if features is not None:
            features.ready.connect(self._features_ready)
        frame_changed = getattr(host, "frame_changed", None)
        if frame_changed is not None:
            frame_changed.connect(lambda _i: self._want())

    @property
    def busy(self) -> bool:
        return self._last is not None

    # ------------------------------------------------------------------ features
    def _active(self) -> bool:
        return getattr(self.host, "tool_name", self.name) == self.name

    def _set(self):
        """The shown frame's superpixels at the current scale, or ``None`` (requested)."""
        features, shown = features_of(self.host), shown_frame(self.host)
        if features is None or shown is None:
            return None
        sp = features.superpixels(*shown, self.scale)
        if sp is not None:
            self.scale = min(self.scale, len(sp.scales) - 1)
        return sp

    def _want(self) -> None:
        if self._active():
            self._set()

    def _features_ready(self, kind: str, frame: int) -> None:
        if kind in ("superpixels", "error") and self._active() and frame == getattr(self.host, "index", frame):
            self._show()

    # ------------------------------------------------------------------ events
    def press(self, ev: PointerEvent) -> None:
        if ev.button not in ("left", "right"):
            return
        sp = self._set()
        if sp is None:
            self.host.message(self._waiting_text())
            return
        self._erase_stroke = ev.ctrl or ev.button == "right"
        self.host.begin_group("superpixel erase" if self._erase_stroke else "superpixel")
        self._last, self._taken = ev.point, set()
        self._stroke(sp, [ev.point])

    def move(self, ev: PointerEvent) -> None:
        self._hover = ev.point
        if self._last is not None:
            sp = self._set()
            if sp is not None:
                self._stroke(sp, [self._last, ev.point])
            self._last = ev.point
        self._show()

    def release(self, ev: PointerEvent) -> None:
        if self._last is None:
            return
        self._last, self._taken = None, set()
        self.host.end_group()

    def cancel(self) -> bool:
        if self._last is None:
            return False
        self.release(PointerEvent(0, 0))
        return True

    def _stroke(self, sp, pts: list[Point]) -> None:
        ids = {int(i) for i in sp.ids_at(pts, self.scale)} - self._taken
        if not ids:
            return
        self._taken |= ids
        region = sp.crop(np.fromiter(ids, np.int64), self.scale)
        if self._erase_stroke:
            self.host.erase(region, "superpixel erase")
        else:
            self.host.paint(region, "superpixel")

    # ------------------------------------------------------------------ scale
    def rescale(self, step: int) -> bool:
        """``,`` / ``.``: a coarser (-1) or finer (+1) scale; says which in the status bar."""
        features = features_of(self.host)
        n = len(features.scales) if features is not None and features.scales else 3
        sp = self._set()
        if sp is not None:
            n = len(sp.scales)
        new = min(max(self.scale + int(step), 0), n - 1)
        changed = new != self.scale
        self.scale = new
        counts = sp.scales if sp is not None else (features.scales if features is not None else None)
        about = f" (about {counts[new]} per frame)" if counts else ""
        self.host.message(f"superpixel scale {new + 1}/{n}{about}, coarse to fine", "hint")
        if self._active():
            self._show()
        return changed

    # ------------------------------------------------------------------ preview
    def _waiting_text(self) -> str:
        features, shown = features_of(self.host), shown_frame(self.host)
        err = features.error(shown[0], "superpixels") if features is not None and shown is not None else ""
        if err:
            return f"superpixels failed on this frame: {err}"
        return f"superpixels: computing scale {self.scale + 1} of this frame in the background; try again in a moment"

    def resume(self) -> None:
        self._want()
        self._show()

    def _show(self) -> None:
        p = Preview(color=self.host.preview_color())
        sp = self._set()
        if sp is None:
            p.text = self._waiting_text()
            self.host.show_preview(p)
            return
        p.text = f"{HINT}  [scale {self.scale + 1}/{len(sp.scales)}]"
        if self._hover is not None:
            p.mask = self._hover_region(sp, self._hover)
        self.host.show_preview(p)

    def _hover_region(self, sp, pt: Point) -> Region:
        """The boundaries around the pointer and the superpixel under it, as one cropped mask."""
        h, w = sp.shape
        half = max(MIN_HALF_PX, int(HALF_SIZES * math.sqrt(h * w / sp.scales[self.scale])))
        x, y = int(round(pt[0])), int(round(pt[1]))
        edge = sp.boundaries(self.scale, (x - half, y - half, x + half + 1, y + half + 1))
        if edge.mask.size == 0:
            return edge
        out = edge.mask.copy()
        under = sp.crop(sp.ids_at([pt], self.scale), self.scale)
        ya, yb = max(under.y0, edge.y0), min(under.y1, edge.y1)
        xa, xb = max(under.x0, edge.x0), min(under.x1, edge.x1)
        if ya < yb and xa < xb:
            out[ya - edge.y0:yb - edge.y0, xa - edge.x0:xb - edge.x0] |= \
                under.mask[ya - under.y0:yb - under.y0, xa - under.x0:xb - under.x0]
        return Region(edge.y0, edge.x0, out)
