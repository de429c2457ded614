"""Model output channels <-> taxonomy category ids.

The released evaluation (``eval_net_video.py``) numbers thing channels 0..57 by ascending VIPSeg
category id of the thing classes, and stuff channels 1..66 by ascending id of the stuff classes;
stuff channel 0 is "some thing" (``STUFF.WITH_THING``) and never becomes a segment. The same rule
maps any taxonomy whose thing/stuff counts match the network's heads.
"""

from __future__ import annotations

from dataclasses import dataclass

from annotator.errors import InputError


@dataclass(frozen=True)
class ChannelMap:
    thing_ids: tuple[int, ...]  # thing channel c -> category id
    stuff_ids: tuple[int, ...]  # stuff channel c (1-based) -> category id stuff_ids[c - 1]

    def thing(self, channel: int) -> int:
        return self.thing_ids[channel]

    def stuff(self, channel: int) -> int:
        return self.stuff_ids[channel - 1]

    def channel_of(self, category_id: int) -> tuple[bool, int]:
        """``(isthing, channel)`` of a category (for training targets)."""
        if category_id in self.thing_ids:
            return True, self.thing_ids.index(category_id)
        if category_id in self.stuff_ids:
            return False, self.stuff_ids.index(category_id) + 1
        raise InputError(f"category {category_id} has no output channel in the model")


def channel_map(taxonomy, thing_classes: int, stuff_classes: int) -> ChannelMap:
    """Map a taxonomy onto a network with ``thing_classes`` centre maps and ``stuff_classes`` region maps."""
    things = tuple(sorted(c.id for c in taxonomy if c.isthing))
    stuff = tuple(sorted(c.id for c in taxonomy if not c.isthing))
    if len(things) != thing_classes or len(stuff) + 1 != stuff_classes:
        raise InputError(f"the project's taxonomy has {len(things)} thing and {len(stuff)} stuff classes, the "
                         f"model predicts {thing_classes} things and {stuff_classes - 1} stuff classes; "
                         "use a model trained for this taxonomy (train-preannotator)")
    return ChannelMap(things, stuff)
