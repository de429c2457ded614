"""VIPSeg format: export, import and the raw panomask encoding (the one place that owns it).

Export writes the ``VIPSeg_720P/`` layout that DVIS and Video-K-Net read without conversion::

    images/<video>/<frame>.jpg         height 720, width int(720*w/h), bilinear (or original size);
                                       VIPSeg's change2_720p.py rule, up or down: 854x480 -> 1281x720
    panomasks/<video>/<frame>.png      raw 16-bit: stuff = category+1, thing = (category+1)*100+instance
    panomasksRGB/<video>/<frame>.png   RGB, segment id = R + 256*G + 65536*B, 0 = void
    panoptic_gt_VIPSeg.json, panoptic_gt_VIPSeg_{train,val,test}.json, panoVIPSeg_categories.json
    train.txt val.txt test.txt
    vps_annotator.json                 our sidecar: segment -> track id/note, so a re-import keeps ids

Segment ids are a pure function of the video's tracks (stuff: the category colour; things: a
deterministic jitter of it, unique in the video and never a stuff colour), so two exports of the
same project are byte-identical. Import decodes raw masks (or RGB masks + JSON), refusing values
the official converter would silently mislabel, and reports them with file and pixel count.

Behind this face (private to the package): ``codec`` (raw values, segment ids, colours),
``export`` and ``importer``; callers import from here.
"""

from annotator.formats.vipseg.codec import (
    MAX_CATEGORY_ID,
    MAX_INSTANCES,
    RAW_STUFF_LIMIT,
    RAW_THING_LIMIT,
    VideoEncoding,
    decode_raw_value,
    encode_raw,
    encode_video,
    id_to_rgb,
    resize_label,
    rgb_id,
    rgb_image_to_id,
    stuff_segment_ids,
    thing_color,
)
from annotator.formats.vipseg.export import CATEGORIES_FILE, GT_JSON, SIDECAR, export_vipseg, export_with
from annotator.formats.vipseg.importer import import_vipseg, import_with

__all__ = ["CATEGORIES_FILE", "GT_JSON", "MAX_CATEGORY_ID", "MAX_INSTANCES", "RAW_STUFF_LIMIT", "RAW_THING_LIMIT",
           "SIDECAR", "VideoEncoding", "decode_raw_value", "encode_raw", "encode_video", "export_vipseg",
           "export_with", "id_to_rgb", "import_vipseg", "import_with", "resize_label", "rgb_id", "rgb_image_to_id", "stuff_segment_ids",
           "thing_color"]
