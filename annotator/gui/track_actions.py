"""Track corrections from the track panel (set class, merge, split, swap, delete), on the controller.

Every correction goes through ``annotator.stages.corrections`` (logged, undoable, the same code as the
CLI's ``correct``), after ``EditSession.flush()`` - corrections read and write label files, so
pending strokes must be on disk first - and is followed by ``invalidate()``, since the session's
cached label maps are stale afterwards (the ``EditSession`` contract). A damaged video (a label PNG the
metadata lists is gone) is refused before anything is written, naming the problem, as the CLI does. Undo and redo of a
correction are the controller's (``undo_stack.run_entry``): this module depends on the controller,
the controller never on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from annotator.editing import DeleteTrackOnFrame
from annotator.errors import AnnotatorError
from annotator.project import require_intact_labels
from annotator.stages import corrections
from annotator.stages.corrections import CorrectionResult

if TYPE_CHECKING:
    from annotator.gui.controller import Controller


def run_correction(ctl: Controller, name: str, fn: Callable[[], CorrectionResult]) -> CorrectionResult | None:
    """Flush, run ``fn`` (a ``corrections`` call), invalidate, record it for Ctrl+Z; errors become messages."""
    if ctl.video is None or ctl.session is None:
        return None
    if not ctl.editable:
        ctl.message(ctl.video.lock_message or "this video is read-only")
        return None
    ctl.tool.cancel()
    ctl.flush()  # the user's own strokes first: a repainted lost frame is then no longer missing
    try:  # integrity first, as the CLI's ``correct`` (issue 28): a lost label PNG would be written back empty
        require_intact_labels(ctl.video, name)
    except AnnotatorError as e:
        ctl.message(str(e))  # "<name> refused: ... integrity problem(s): <what, where>. Restore ..."
        return None
    try:
        result = fn()
    except AnnotatorError as e:
        ctl.message(f"{name}: {e}")
        return None
    finally:
        ctl.session.invalidate()
    if result.undo_id:
        ctl.undo_stack.push_correction(name, result.undo_id, fn)
    if ctl.selected is not None and ctl.selected not in ctl.video.tracks:
        ctl.select_track(None)
    ctl.message(f"{name}: done ({len(result.frames)} frame(s) changed)")
    ctl.history_changed.emit()
    ctl.show_frames_changed(result.frames)
    return result


def set_class(ctl: Controller, track: int, category_id: int) -> CorrectionResult | None:
    cat = ctl.video.taxonomy.get(category_id) if ctl.video is not None else None
    name = f"track {track} becomes {cat.name if cat else category_id}"
    return run_correction(ctl, name, lambda: corrections.set_class(ctl.video, track, category_id))


def merge(ctl: Controller, keep: int, absorb: int) -> CorrectionResult | None:
    res = run_correction(ctl, f"merge track {absorb} into {keep}", lambda: corrections.merge(ctl.video, keep, absorb))
    if res is not None:
        ctl.select_track(keep)
    return res


def split(ctl: Controller, track: int, frame: int) -> CorrectionResult | None:
    return run_correction(ctl, f"split track {track} from frame {frame + 1}",
                          lambda: corrections.split(ctl.video, track, frame))


def swap(ctl: Controller, a: int, b: int, frame: int) -> CorrectionResult | None:
    return run_correction(ctl, f"swap tracks {a} and {b} from frame {frame + 1}",
                          lambda: corrections.swap(ctl.video, a, b, frame))


def delete(ctl: Controller, track: int) -> CorrectionResult | None:
    return run_correction(ctl, f"delete track {track}", lambda: corrections.delete(ctl.video, track))


def delete_from(ctl: Controller, track: int, frame: int) -> CorrectionResult | None:
    """Delete ``track`` from ``frame`` on: split there and delete the new part, one undo step."""
    video = ctl.video
    assert video is not None
    frames = video.track_frames(track)
    if frames and min(frames) >= frame:
        return delete(ctl, track)

    def fn() -> CorrectionResult:
        rec = corrections.EditRecorder(video, "delete_from", {"track": track, "from": frame})
        try:
            part = corrections.split(video, track, frame, recorder=rec)
            assert part.new_track is not None
            corrections.delete(video, part.new_track, recorder=rec)
        except BaseException:
            rec.rollback()
            raise
        changed = rec.changed_frames()
        undo_id = rec.finish({"frames": len(changed)})
        return CorrectionResult("delete_from", undo_id, changed)

    return run_correction(ctl, f"delete track {track} from frame {frame + 1} on", fn)


def delete_on_frame(ctl: Controller, track: int) -> bool:
    """A label edit (through ``EditSession``), not a correction: one frame only."""
    return ctl.apply(DeleteTrackOnFrame(track), f"delete track {track} on frame {ctl.index + 1}")

