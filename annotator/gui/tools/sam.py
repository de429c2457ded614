"""SAM click (left +, right/Shift -) and SAM box: three candidates, Tab cycles, Enter accepts.

Prompt state lives in ``annotator.editing.SamPrompt`` (clicks, box, candidates, logits fed back);
this class only turns events into prompts and asks the host for the engine and the frame's
embedding. If the embedding is not computed yet the host says so and calls :meth:`embedding_ready`
when it is, and the pending prompt is decoded then (a click is never silently dropped).
"""

from __future__ import annotations

from annotator.editing import EditError, SamPrompt
from annotator.errors import InputError
from annotator.gui.tools.base import Point, PointerEvent, Preview, Tool, drag_rect

CLICK_SLOP = 3.0  # image pixels: a press and release closer than this is a click, not a box


class SamClickTool(Tool):
    name = "sam"
    title = "SAM click"
    needs_sam = True
    uses_box = False

    def __init__(self, host) -> None:
        super().__init__(host)
        self.prompt = SamPrompt()
        self.waiting = False
        self._start: Point | None = None
        self._end: Point | None = None
        self._negative = False
        self._error = ""  # why the last decode failed: on the canvas until the prompt changes

    @property
    def busy(self) -> bool:
        return not self.prompt.empty or self._start is not None

    def press(self, ev: PointerEvent) -> None:
        if ev.button not in ("left", "right"):
            return
        self._negative = ev.button == "right" or ev.shift
        self._start = self._end = ev.point

    def move(self, ev: PointerEvent) -> None:
        if self._start is not None and self.uses_box and not self._negative:
            self._end = ev.point
            self._show()

    def release(self, ev: PointerEvent) -> None:
        if self._start is None:
            return
        start, self._start, self._end = self._start, None, None
        dx, dy = ev.x - start[0], ev.y - start[1]
        if self.uses_box and not self._negative and max(abs(dx), abs(dy)) > CLICK_SLOP:
            self.prompt.set_box(drag_rect(start, ev.point))
        else:
            self.prompt.add_click(start[0], start[1], positive=not self._negative)
        self.run()

    def run(self) -> None:
        """Decode the prompt now, or wait for the embedding (the host calls back)."""
        if self.prompt.empty:
            self._show()
            return
        got = self.host.sam_request(self)
        if got is None:
            self.waiting = True
            self._show()
            return
        self.waiting = False
        engine, emb = got
        self._error = ""
        try:
            self.prompt.run(engine, emb)
        except (EditError, InputError) as e:
            text = str(e) if str(e).startswith("SAM") else f"SAM: {e}"
            self._error = f"{text} (the last prompt was removed)"
            self.prompt.remove_last_click()
        self._show()

    def embedding_ready(self) -> None:
        if self.waiting:
            self.run()

    def cycle(self, step: int) -> bool:
        if self.prompt.prediction is None:
            return False
        self.prompt.cycle(step)
        self._show()
        return True

    def accept(self) -> bool:
        if self.prompt.prediction is None:
            return False
        region = self.prompt.region()
        if region.empty:
            self.host.message("SAM: the chosen candidate is empty; click again or press Tab")
            return True
        self.host.paint(region, "SAM")
        self.cancel()
        return True

    def cancel(self) -> bool:
        had = self.busy
        self.prompt.reset()
        self.waiting = False
        self._error = ""
        self._start = self._end = None
        self.host.show_preview(None)
        return had

    def backspace(self) -> bool:
        if not self.prompt.points:
            return False
        self.prompt.remove_last_click()
        self.prompt.prediction = None  # decode the remaining clicks afresh
        if self.prompt.empty:
            self.cancel()
        else:
            self.run()
        return True

    def candidates_text(self) -> str:
        pred = self.prompt.prediction
        if pred is None:
            return ""
        parts = [f"[{s:.2f}]" if i == self.prompt.choice else f"{s:.2f}" for i, s in enumerate(pred.scores)]
        return f"candidate {self.prompt.choice + 1}/{len(pred)} (scores {' '.join(parts)})"

    def _show(self) -> None:
        p = Preview(color=self.host.preview_color(), error=self._error)
        p.clicks = [(x, y, lab == 1) for (x, y), lab in zip(self.prompt.points, self.prompt.labels, strict=True)]
        if self._start is not None and self._end is not None:
            p.rect = drag_rect(self._start, self._end)
        elif self.prompt.box is not None:
            p.rect = self.prompt.box
        if self.waiting:
            p.text = "SAM: waiting for this frame's embedding; the prompt is decoded as soon as it is ready"
        elif self.prompt.prediction is not None:
            p.mask = self.prompt.region()
            p.text = f"SAM {self.candidates_text()}: Tab cycles, Enter accepts, Esc discards"
        else:
            p.text = ("SAM box: drag a box (clicks add +/- points)" if self.uses_box
                      else "SAM: left click = object (+), right click = background (-)")
        self.host.show_preview(p)


class SamBoxTool(SamClickTool):
    name = "sam_box"
    title = "SAM box"
    uses_box = True
