"""Tool interface: pointer events in image coordinates in, a preview and at most one engine call out.

The shape follows MiVOS/Cutie's interaction objects and CVAT's canvas handlers: the canvas only
reports where the pointer is; a tool collects clicks and drags, asks its host (the controller) for
the image, the label map and the target track, shows a :class:`Preview`, and on commit hands one
``Operation`` to the host, which applies it through ``EditSession``. Tools never paint labels
themselves and never touch the project.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from annotator.editing import Operation, PaintMode, Region

Point = tuple[float, float]


@dataclass(frozen=True)
class PointerEvent:
    """One mouse event mapped to image coordinates (OpenCV convention: pixel centres on integers)."""

    x: float
    y: float
    button: str = ""  # "left" | "right" | "middle" | "" (move without button)
    buttons: frozenset[str] = frozenset()
    shift: bool = False
    ctrl: bool = False
    scale: float = 1.0  # screen pixels per image pixel (the zoom): click tolerances are in screen pixels

    @property
    def point(self) -> Point:
        return (self.x, self.y)


@dataclass
class Preview:
    """What a tool wants drawn over the frame; painted by the canvas, never written to labels."""

    mask: Region | None = None
    color: tuple[int, int, int] = (255, 220, 0)
    lines: list[tuple[list[Point], bool]] = field(default_factory=list)  # (points, closed)
    rect: tuple[float, float, float, float] | None = None
    clicks: list[tuple[float, float, bool]] = field(default_factory=list)  # (x, y, positive)
    text: str = ""  # the tool's hint for the status bar
    vertices: bool = False  # mark the points of ``lines`` (polygon vertices)
    #: what is wrong with the pending result (a refused polygon, a failed SAM decode): shown on the
    #: canvas for as long as the tool shows this state, so no cursor read-out or hint hides it
    error: str = ""
    bad_lines: list[tuple[Point, Point]] = field(default_factory=list)  # segments to mark (crossing edges)


class ToolHost(Protocol):
    """What the controller offers a tool."""

    brush_radius: float
    paint_mode: PaintMode

    def image(self) -> np.ndarray: ...
    def label(self) -> np.ndarray: ...
    def paint(self, region: Region, name: str) -> bool: ...
    def erase(self, region: Region, name: str) -> bool: ...
    def fill(self, point: Point, name: str, by_colour: bool = False) -> bool: ...
    def apply(self, op: Operation, name: str) -> bool: ...
    def begin_group(self, name: str) -> None: ...
    def end_group(self) -> None: ...
    def show_preview(self, preview: Preview | None) -> None: ...
    def message(self, text: str, scope: str | None = None) -> None: ...
    def preview_color(self) -> tuple[int, int, int]: ...
    def sam_request(self, tool: Any) -> tuple[Any, Any] | None: ...


class Tool:
    """Base class: every hook is optional; ``busy`` says a pending result waits for Enter/Esc."""

    name = ""
    title = ""
    needs_sam = False

    def __init__(self, host: ToolHost) -> None:
        self.host = host

    @property
    def cursor_radius(self) -> float | None:
        """Radius (image pixels) of the cursor circle, or ``None`` for a plain cursor."""
        return None

    @property
    def busy(self) -> bool:
        return False

    def press(self, ev: PointerEvent) -> None:
        pass

    def move(self, ev: PointerEvent) -> None:
        pass

    def release(self, ev: PointerEvent) -> None:
        pass

    def double_click(self, ev: PointerEvent) -> None:
        pass

    def accept(self) -> bool:
        """Enter: commit the pending result; ``False`` if there was nothing to commit."""
        return False

    def cancel(self) -> bool:
        """Esc: discard the pending state; ``False`` if there was none."""
        return False

    def cycle(self, step: int) -> bool:
        """Tab / Shift+Tab: show another candidate; ``False`` if the tool has none."""
        return False

    def backspace(self) -> bool:
        """Remove the last point or click; ``False`` if there is none."""
        return False

    def deactivate(self) -> None:
        """A frame or video change ends the interaction (pending results are discarded)."""
        self.cancel()
        self.host.show_preview(None)

    def suspend(self) -> str:
        """Another tool is chosen. By default that ends the interaction as :meth:`deactivate` does; a
        tool whose pending work is worth keeping (an open polygon) keeps it, hides its preview and
        returns a sentence saying so (shown in the status bar); ``""`` otherwise."""
        self.deactivate()
        return ""

    def resume(self) -> None:
        """The tool is chosen again: show what :meth:`suspend` kept."""


class ToolCall:
    """``with calls:`` around a tool's event or key: messages posted inside belong to the tool's
    state (``active``), and once one was posted (``posted``) the tool's hint must not replace it."""

    def __init__(self) -> None:
        self.depth = 0
        self.posted = False

    @property
    def active(self) -> bool:
        return self.depth > 0

    def __enter__(self) -> ToolCall:
        if self.depth == 0:
            self.posted = False
        self.depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1


def end_interaction(tools: Iterable[Tool], active: Tool | None, switch: bool) -> str:
    """A tool switch lets the active tool keep its pending work (:meth:`Tool.suspend`; returns what
    it says about it); a frame or video change discards the pending work of every tool."""
    if active is None:
        return ""
    if switch:
        return active.suspend()
    for tool in tools:
        if tool is active or tool.busy:
            tool.deactivate()
    return ""


def drag_rect(a: Point, b: Point) -> tuple[float, float, float, float]:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))
