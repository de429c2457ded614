"""Timeline: a keyframe holding only propagated labels is marked "not annotated" (hollow mark)."""

from __future__ import annotations

from annotator.gui.timeline import Timeline
from annotator.project import FrameState


def test_not_annotated_keyframes_are_hollow(qtbot):
    tl = Timeline()
    qtbot.addWidget(tl)
    tl.resize(400, 40)
    states = [FrameState.MANUAL] + [FrameState.PROPAGATED] * 4 + [FrameState.PROPAGATED] * 5
    tl.set_video(states, [0, 5])
    tl.show()
    img = tl.grab().toImage()
    cell = 400 // 10
    filled = img.pixelColor(cell // 2, 4)
    hollow = img.pixelColor(5 * cell + cell // 2, 4)
    assert filled.lightness() > 240  # annotated keyframe: solid white mark
    assert hollow.lightness() < 100  # not annotated: only the outline is white
    assert tl.describe(5) == "frame 6: propagated, keyframe not annotated"
    assert tl.describe(0) == "frame 1: manual, keyframe"
