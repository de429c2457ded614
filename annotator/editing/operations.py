"""Edit operations on one frame's label map that keep the panoptic invariant.

A label map has exactly one owner per pixel (``annotator.panoptic``), so every operation here is
"assign these pixels to that id" under some rule; there is no way to produce overlapping masks.
Operations are small immutable objects: :meth:`Operation.apply` reads the label map and returns
the new values of the bounding box it changes (a :class:`Change`), never the whole frame, so the
undo stack (``history.py``) stores only that box and a brush dab at 720p stays cheap.

Locked tracks (the lock toggle of the track panel) are absolute: no operation changes their
pixels. Targeting a locked track explicitly (painting into it, deleting it) is an
:class:`EditError`; an area operation that merely covers locked pixels leaves them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum

import cv2
import numpy as np

from annotator import panoptic
from annotator.errors import EditError


class PaintMode(str, Enum):
    """Which existing pixels a paint may take.

    - ``panoptic`` (the window's default; the labelling order of panoptic datasets): a thing takes
      every pixel under the mask (stuff, void, other things), stuff takes only void pixels, so a sky
      or tree drawn after the objects never covers them (DESIGN's invariant: "drawing a thing over
      stuff takes those pixels"). Needs to know whether the target is a thing (``Paint.thing``).
    - ``replace``: every pixel under the mask (except locked tracks) becomes the track.
    - ``only_unlabelled``: only void pixels are painted; every other track keeps its pixels
      ("paint behind").
    - ``keep_locked``: like ``replace``; kept as an explicit mode so a GUI can offer the three
      choices of the spec. Since locks are absolute here, ``replace`` never takes locked pixels either.
    """

    PANOPTIC = "panoptic"
    REPLACE = "replace"
    ONLY_UNLABELLED = "only_unlabelled"
    KEEP_LOCKED = "keep_locked"

    def takes_only_void(self, thing: bool) -> bool:
        """Whether a paint in this mode into a thing (``thing``) or stuff track takes void pixels only."""
        return self == PaintMode.ONLY_UNLABELLED or (self == PaintMode.PANOPTIC and not thing)


# --------------------------------------------------------------------------- regions


@dataclass(frozen=True, eq=False)
class Region:
    """A boolean mask placed at ``(y0, x0)`` in the frame: the footprint of a tool, cropped to its box.

    Tools return regions rather than full-frame masks so that an edit costs its size, not the frame's.
    """

    y0: int
    x0: int
    mask: np.ndarray  # bool, (h, w)

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def empty(self) -> bool:
        return self.mask.size == 0 or not bool(self.mask.any())

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> Region:
        """Crop a full-frame boolean mask to its bounding box (an empty mask gives an empty region)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise EditError(f"a mask must be 2-D, got shape {mask.shape}")
        box = bbox_of(mask)
        if box is None:
            return cls(0, 0, np.zeros((0, 0), bool))
        y0, x0, y1, x1 = box
        return cls(y0, x0, mask[y0:y1, x0:x1])

    def clipped(self, shape: tuple[int, int]) -> Region:
        """The part of the region inside an image of ``shape`` (height, width)."""
        h, w = shape
        y0, x0 = max(self.y0, 0), max(self.x0, 0)
        y1, x1 = min(self.y1, h), min(self.x1, w)
        if y1 <= y0 or x1 <= x0:
            return Region(0, 0, np.zeros((0, 0), bool))
        return Region(y0, x0, self.mask[y0 - self.y0:y1 - self.y0, x0 - self.x0:x1 - self.x0])

    def to_mask(self, shape: tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, bool)
        r = self.clipped(shape)
        out[r.y0:r.y1, r.x0:r.x1] = r.mask
        return out


def as_region(mask: Region | np.ndarray, shape: tuple[int, int] | None = None) -> Region:
    """A region from a region or a full-frame bool mask (which must have the frame's ``shape``)."""
    if isinstance(mask, Region):
        return mask
    mask = np.asarray(mask)
    if shape is not None and mask.shape != tuple(shape):
        raise EditError(f"mask is {mask.shape[-1]}x{mask.shape[0]} but the frame is {shape[1]}x{shape[0]}"
                        if mask.ndim == 2 else f"a mask must be 2-D, got shape {mask.shape}")
    return Region.from_mask(mask)


def bbox_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(y0, x0, y1, x1)`` (exclusive ends) of the true pixels, or ``None`` if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


# --------------------------------------------------------------------------- context and result


@dataclass
class EditContext:
    """What an operation may consult besides the label map: locks, the track table, other frames."""

    locked: Collection[int] = field(default_factory=frozenset)
    tracks: Collection[int] | Mapping[int, object] | None = None  # None: do not check track ids
    read_label: Callable[[int], np.ndarray] | None = None  # for copy-from-frame

    def locked_pixels(self, patch: np.ndarray) -> np.ndarray:
        if not self.locked:
            return np.zeros(patch.shape, bool)
        return np.isin(patch, np.fromiter(self.locked, dtype=np.int64))

    def check_target(self, track_id: int, what: str) -> None:
        """Refuse to write into a locked, unknown or void track."""
        if track_id <= 0 or track_id > panoptic.MAX_TRACK_ID:
            raise EditError(f"{what}: track id must be between 1 and {panoptic.MAX_TRACK_ID}, got {track_id} "
                            "(use the eraser to make pixels void)")
        if self.tracks is not None and track_id not in self.tracks:
            raise EditError(f"{what}: track {track_id} does not exist in this video; create it first")
        if track_id in self.locked:
            raise EditError(f"{what}: track {track_id} is locked; unlock it in the track panel to edit it")


@dataclass(frozen=True, eq=False)
class Change:
    """New values of the box ``[y0:y0+h, x0:x0+w]`` of a label map."""

    y0: int
    x0: int
    after: np.ndarray  # uint16 (h, w)

    @property
    def box(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y0 + self.after.shape[0]), slice(self.x0, self.x0 + self.after.shape[1])


def _change(label: np.ndarray, y0: int, x0: int, new: np.ndarray) -> Change | None:
    """Shrink a candidate box to the pixels that really differ (``None`` if nothing changes)."""
    old = label[y0:y0 + new.shape[0], x0:x0 + new.shape[1]]
    diff = old != new
    box = bbox_of(diff)
    if box is None:
        return None
    a, b, c, d = box
    return Change(y0 + a, x0 + b, np.ascontiguousarray(new[a:c, b:d], dtype=panoptic.LABEL_DTYPE))


def apply_change(label: np.ndarray, change: Change | None) -> np.ndarray:
    """Write a change into ``label`` in place and return it."""
    if change is not None:
        label[change.box] = change.after
    return label


# --------------------------------------------------------------------------- operations


class Operation:
    """Base class: ``apply(label, ctx)`` returns the :class:`Change` it makes, or ``None`` (no-op)."""

    name = "edit"

    def apply(self, label: np.ndarray, ctx: EditContext) -> Change | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class Paint(Operation):
    """Assign the pixels of ``mask`` to ``track_id`` according to ``mode`` (brush, polygon, SAM, GrabCut...).

    ``thing`` says whether the target track is a thing; only :attr:`PaintMode.PANOPTIC` reads it
    (the default ``True`` keeps a caller that does not know the class at ``replace``'s behaviour).
    """

    mask: Region | np.ndarray
    track_id: int
    mode: PaintMode = PaintMode.REPLACE
    name: str = "paint"
    thing: bool = True

    def _take(self, patch: np.ndarray, r: Region, ctx: EditContext) -> np.ndarray:
        take = r.mask & ~ctx.locked_pixels(patch)
        if PaintMode(self.mode).takes_only_void(self.thing):
            take &= patch == panoptic.VOID
        return take

    def apply(self, label: np.ndarray, ctx: EditContext) -> Change | None:
        ctx.check_target(self.track_id, self.name)
        r = as_region(self.mask, label.shape).clipped(label.shape)
        if r.empty:
            return None
        patch = label[r.y0:r.y1, r.x0:r.x1]
        new = np.where(self._take(patch, r, ctx), np.uint16(self.track_id), patch)
        return _change(label, r.y0, r.x0, new)

    def protected(self, label: np.ndarray, ctx: EditContext) -> int:
        """Pixels under the mask that stay another track's because of the mode or a lock (the window
        says so when a stroke changed nothing: "every pixel was protected")."""
        r = as_region(self.mask, label.shape).clipped(label.shape)
        if r.empty:
            return 0
        patch = label[r.y0:r.y1, r.x0:r.x1]
        return int(np.count_nonzero(r.mask & (patch != self.track_id) & ~self._take(patch, r, ctx)))

    def describe(self) -> str:
        return f"{self.name} track {self.track_id}"


@dataclass(frozen=True, eq=False)
class Erase(Operation):
    """Make the pixels of ``mask`` void; only those of ``track_id`` if given. Locked pixels stay."""

    mask: Region | np.ndarray
    track_id: int | None = None
    name: str = "erase"

    def apply(self, label: np.ndarray, ctx: EditContext) -> Change | None:
        if self.track_id is not None and self.track_id in ctx.locked:
            raise EditError(f"erase: track {self.track_id} is locked; unlock it in the track panel to edit it")
        r = as_region(self.mask, label.shape).clipped(label.shape)
        if r.empty:
            return None
        patch = label[r.y0:r.y1, r.x0:r.x1]
        take = r.mask & ~ctx.locked_pixels(patch)
        if self.track_id is not None:
            take &= patch == self.track_id
        new = np.where(take, np.uint16(panoptic.VOID), patch)
        return _change(label, r.y0, r.x0, new)

    def describe(self) -> str:
        return self.name if self.track_id is None else f"{self.name} track {self.track_id}"


@dataclass(frozen=True, eq=False)
class FillRegion(Operation):
    """Give ``track_id`` the connected region of equal label around ``point`` (x, y) - bucket fill on labels.

    Filling a void hole inside a segment, or recolouring one island of a track, are the uses.
    Filling a locked region is an error; filling with the id it already has is a no-op. ``mode`` and
    ``thing`` are those of :class:`Paint` (the panoptic mode fills a thing's region with stuff not).
    """

    point: tuple[float, float]
    track_id: int
    connectivity: int = 4
    name: str = "fill"
    mode: PaintMode = PaintMode.REPLACE
    thing: bool = True

    def apply(self, label: np.ndarray, ctx: EditContext) -> Change | None:
        ctx.check_target(self.track_id, self.name)
        x, y = pixel_of(self.point, label.shape, "fill")
        old = int(label[y, x])
        if old == self.track_id:
            return None
        if old in ctx.locked:
            raise EditError(f"fill: the region at ({x}, {y}) belongs to locked track {old}")
        return self.paint(label).apply(label, ctx)

    def paint(self, label: np.ndarray) -> Paint:
        """The paint this fill makes on ``label`` (the region under the point, with the fill's mode)."""
        x, y = pixel_of(self.point, label.shape, "fill")
        region = connected_region(label == label[y, x], (x, y), self.connectivity)
        return Paint(region, self.track_id, self.mode, name=self.name, thing=self.thing)

    def describe(self) -> str:
        return f"{self.name} track {self.track_id}"


def pixel_of(point: tuple[float, float], shape: tuple[int, int], what: str) -> tuple[int, int]:
    """The pixel ``(x, y)`` under a clicked point; :class:`EditError` if it is not a finite point in the image."""
    h, w = shape
    try:
        fx, fy = float(point[0]), float(point[1])
    except (TypeError, ValueError, IndexError):
        raise EditError(f"{what}: expected an (x, y) point, got {point!r}") from None
    if not (np.isfinite(fx) and np.isfinite(fy)):
        raise EditError(f"{what}: the point must be finite numbers, got {point!r}")
    x, y = int(round(fx)), int(round(fy))
    if not (0 <= x < w and 0 <= y < h):
        raise EditError(f"{what}: point ({x}, {y}) is outside the {w}x{h} image")
    return x, y


def connected_region(mask: np.ndarray, point: tuple[int, int], connectivity: int = 4) -> Region:
    """The connected component of ``mask`` containing ``point`` (x, y), via OpenCV's flood fill."""
    if connectivity not in (4, 8):
        raise EditError(f"connectivity must be 4 or 8, got {connectivity}")
    h, w = mask.shape
    ff = np.zeros((h + 2, w + 2), np.uint8)
    ff[1:-1, 1:-1] = ~mask  # flood fill stops at non-zero mask pixels
    img = np.zeros((h, w), np.uint8)
    _, _, _, rect = cv2.floodFill(img, ff, point, 1, flags=connectivity | cv2.FLOODFILL_MASK_ONLY | (2 << 8))
    x0, y0, rw, rh = rect
    comp = ff[1 + y0:1 + y0 + rh, 1 + x0:1 + x0 + rw] == 2
    return Region(y0, x0, comp)


@dataclass(frozen=True, eq=False)
class MovePixels(Operation):
    """Reassign the pixels of ``from_track`` (inside ``mask`` if given) to ``to_track`` (0 = void)."""

    from_track: int
    to_track: int
    mask: Region | np.ndarray | None = None
    name: str = "move pixels"

    def apply(self, label: np.ndarray, ctx: EditContext) -> Change | None:
        if self.from_track in ctx.locked:
            raise EditError(f"{self.name}: track {self.from_track} is locked; unlock it to take its pixels")
        if self.to_track != panoptic.VOID:
            ctx.check_target(self.to_track, self.name)
        if self.from_track == self.to_track:
            return None
        if self.mask is None:
            r = Region.from_mask(label == self.from_track)
        else:
            r = as_region(self.mask, label.shape).clipped(label.shape)
        if r.empty:
            return None
        patch = label[r.y0:r.y1, r.x0:r.x1]
        new = np.where(r.mask & (patch == self.from_track), np.uint16(self.to_track), patch)
        return _change(label, r.y0, r.x0, new)

    def describe(self) -> str:
        return f"{self.name} {self.from_track} -> {self.to_track}"


@dataclass(frozen=True, eq=False)
class DeleteTrackOnFrame(Operation):
    """Remove one track from this frame only (its pixels become void)."""

    track_id: int
    name: str = "delete track on frame"

    def apply(self, label: np.ndarray, ctx: EditContext) -> Change | None:
        return MovePixels(self.track_id, panoptic.VOID, name=self.name).apply(label, ctx)

    def describe(self) -> str:
        return f"delete track {self.track_id} on frame"


@dataclass(frozen=True, eq=False)
class CopyTrackFromFrame(Operation):
    """Replace the track's mask on this frame by its mask on ``source_frame`` (same position).

    The track's current pixels become void first; the copied mask is then painted with ``mode``,
    so ``only_unlabelled`` copies the track only where nothing else is.
    """

    track_id: int
    source_frame: int
    mode: PaintMode = PaintMode.REPLACE
    name: str = "copy track from frame"

    def apply(self, label: np.ndarray, ctx: EditContext) -> Change | None:
        ctx.check_target(self.track_id, self.name)
        if ctx.read_label is None:
            raise EditError("copy track from frame: no access to other frames in this context")
        src = ctx.read_label(self.source_frame)
        if src.shape != label.shape:
            raise EditError(f"copy track from frame: frame {self.source_frame} is {src.shape}, this one {label.shape}")
        work = label.copy()
        cleared = MovePixels(self.track_id, panoptic.VOID).apply(work, ctx)
        apply_change(work, cleared)
        painted = Paint(Region.from_mask(src == self.track_id), self.track_id, self.mode).apply(work, ctx)
        apply_change(work, painted)
        boxes = [c for c in (cleared, painted) if c is not None]
        if not boxes:
            return None
        y0 = min(c.y0 for c in boxes)
        x0 = min(c.x0 for c in boxes)
        y1 = max(c.y0 + c.after.shape[0] for c in boxes)
        x1 = max(c.x0 + c.after.shape[1] for c in boxes)
        return _change(label, y0, x0, work[y0:y1, x0:x1])

    def describe(self) -> str:
        return f"copy track {self.track_id} from frame {self.source_frame}"


@dataclass(frozen=True, eq=False)
class ReplaceLabel(Operation):
    """Set the whole label map (e.g. accept a propagated or pre-annotated result), keeping locked pixels."""

    label: np.ndarray
    name: str = "replace label map"

    def apply(self, label: np.ndarray, ctx: EditContext) -> Change | None:
        new = np.asarray(self.label)
        if new.shape != label.shape:
            raise EditError(f"{self.name}: label map is {new.shape}, the frame is {label.shape}")
        new = new.astype(panoptic.LABEL_DTYPE, copy=True)
        keep = ctx.locked_pixels(label) | ctx.locked_pixels(new)
        new[keep] = label[keep]
        if ctx.tracks is not None:
            unknown = panoptic.unknown_ids(new, ctx.tracks)
            if unknown:
                raise EditError(f"{self.name}: ids {unknown[:10]} are not tracks of the video")
        return _change(label, 0, 0, new)
