"""CLI: ``associate`` (the sparse tracking loop) and ``correct`` (its correction operations).

    python main.py associate PROJECT --video V [--threshold 0.3] [--review-threshold 0.5]
                             [--max-gap 3] [--from K] [--propagator flow|copy] [--quiet]
    python main.py correct PROJECT --video V reassign TRACK (--to T | --new) [--from N]
    python main.py correct PROJECT --video V swap A B [--from N]
    python main.py correct PROJECT --video V merge KEEP ABSORB
    python main.py correct PROJECT --video V split TRACK --at N
    python main.py correct PROJECT --video V set-class TRACK CLASS      (category id or name)
    python main.py correct PROJECT --video V delete TRACK
    python main.py correct PROJECT --video V confirm --frame K
    python main.py correct PROJECT --video V unconfirm --frame K
    python main.py correct PROJECT --video V undo [--id UNDO_ID]
    python main.py correct PROJECT --video V history

Frame-based corrections (reassign, swap, split) and merge record the first keyframe they rewrote
as *confirmed*; ``confirm`` marks a keyframe confirmed explicitly, ``unconfirm`` drops it. A
confirmed keyframe is a fixed anchor of every later association run (its ids are kept and
followed; disagreements become ``disputed`` review flags). Frame-based corrections and
``confirm`` then re-run association from that keyframe (``--no-reassociate`` skips it). Every operation
is logged in ``video.json`` and undone by ``correct ... undo`` (last in, first out). The GUI calls
the same functions (``annotator.stages.correct.run_correction`` -> ``association.apply_correction``,
``corrections.undo_last``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from annotator.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("associate", help="give the instances of every keyframe their video-wide track ids "
                                         "(IoU + Hungarian over propagated masks)")
    _common(p)
    p.add_argument("--threshold", type=float, default=0.3, help="accept a match at IoU >= this (default 0.3)")
    p.add_argument("--review-threshold", type=float, default=0.5,
                   help="flag matches below this IoU for review (default 0.5)")
    p.add_argument("--max-gap", type=int, default=3,
                   help="re-identify a track that vanished for up to this many keyframes (default 3)")
    p.add_argument("--from", dest="start", type=int, default=None,
                   help="trust keyframes before this frame and associate from here on")
    p.add_argument("--quiet", action="store_true", help="print only the summary and the flags")
    p.set_defaults(func=run_associate)

    p = sub.add_parser("correct", help="fix association mistakes (reassign, swap, merge, split, set-class, "
                                       "delete), confirm keyframes, or undo them")
    _common(p)
    p.add_argument("--no-reassociate", action="store_true",
                   help="do not re-run association after a frame-based correction")
    ops = p.add_subparsers(dest="op", metavar="OP", required=True)
    o = ops.add_parser("reassign", help="from frame N on, the pixels of TRACK go to another track")
    o.add_argument("track", type=int)
    g = o.add_mutually_exclusive_group(required=True)
    g.add_argument("--to", type=int, help="target track (same class)")
    g.add_argument("--new", action="store_true", help="continue as a new track")
    o.add_argument("--from", dest="frame", type=int, default=0, help="first dense frame (default 0)")
    o = ops.add_parser("swap", help="from frame N on, tracks A and B exchange their pixels")
    o.add_argument("track_a", type=int)
    o.add_argument("track_b", type=int)
    o.add_argument("--from", dest="frame", type=int, default=0, help="first dense frame (default 0)")
    o = ops.add_parser("merge", help="ABSORB becomes part of KEEP on every frame")
    o.add_argument("keep", type=int)
    o.add_argument("absorb", type=int)
    o = ops.add_parser("split", help="from frame N on, TRACK continues as a new track")
    o.add_argument("track", type=int)
    o.add_argument("--at", dest="frame", type=int, required=True, help="first dense frame of the new track")
    o = ops.add_parser("set-class", help="change the class of TRACK")
    o.add_argument("track", type=int)
    o.add_argument("category", help="category id or name")
    o = ops.add_parser("delete", help="delete TRACK and its pixels on every frame")
    o.add_argument("track", type=int)
    o = ops.add_parser("confirm", help="keyframe K is confirmed: association keeps its ids and follows them")
    o.add_argument("--frame", type=int, required=True, help="the keyframe (dense frame index)")
    o = ops.add_parser("unconfirm", help="drop the confirmation of keyframe K (association may relabel it)")
    o.add_argument("--frame", type=int, required=True, help="the keyframe (dense frame index)")
    o = ops.add_parser("undo", help="undo the latest correction or association run")
    o.add_argument("--id", dest="undo_id", help="undo id; must be the latest step (safety check)")
    ops.add_parser("history", help="list the steps that can be undone, oldest first")
    p.set_defaults(func=run_correct)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", help="project folder (NAME.vpsproj)")
    p.add_argument("--video", required=True, help="video id")
    p.add_argument("--propagator", choices=("flow", "copy"), default=None,
                   help="how tracks are carried between keyframes (default: flow, copy if flow is unavailable)")


def _open(args: argparse.Namespace, readonly: bool = False) -> Any:
    from annotator.project import Project, require_intact_labels

    proj = Project.open(args.project)
    if args.video not in proj.video_ids:
        raise InputError(f"project {proj.path} has no video {args.video!r} "
                         f"(videos: {', '.join(proj.video_ids) or 'none'})")
    video = proj.open_video(args.video, readonly=readonly)
    for note in video.recovery_notes:  # e.g. an operation killed last time was rolled back
        print(f"note: {note}", file=sys.stderr)
    if video.readonly and not readonly:
        video.close()
        raise InputError(video.lock_message)  # names the holder and what to do (close it, or unlock)
    if not readonly:  # a writing command checks integrity first, as export and propagate do
        # (a missing frame image does not stop it: association names it if its propagator needs it)
        require_intact_labels(video, f"{_action(args)} of video {args.video!r}", close=True)
    return video


def _action(args: argparse.Namespace) -> str:
    """What a refusal names: ``associate`` or ``correct <op>``."""
    op = getattr(args, "op", None)
    return f"correct {op}" if op else "associate"


def run_associate(args: argparse.Namespace) -> int:
    from annotator.jobs import TqdmProgress
    from annotator.stages import association

    cfg = association.AssociationConfig(threshold=args.threshold, review_threshold=args.review_threshold,
                                        max_gap=args.max_gap)
    options = association.AssociateOptions(cfg, args.propagator, args.start).with_engine()  # a bad name fails before opening
    prop = options.engine
    video = _open(args)
    try:
        with TqdmProgress(f"associate {args.video} ({prop.name})", unit="keyframe") as bar:
            res = association.run_associate(video, options, progress=bar)
    finally:
        video.close()
    if not args.quiet:
        for m in res.matches:
            how = f" by {m.criterion}" if m.criterion and m.criterion != "iou" else ""
            src = f" from keyframe {m.source}" if m.source >= 0 else ""
            print(f"keyframe {m.keyframe:5d}  segment {m.segment:5d} -> track {m.track:5d}  class {m.category:3d}  "
                  f"{m.kind:12s} IoU {m.iou:.2f}{src}{how}")
    first = min(res.keyframes, default=None)
    new = sorted({m.track for m in res.matches if m.kind == "new" and m.keyframe != first})
    print(f"associated {len(res.keyframes)} keyframes with {prop.name}; new tracks after the first keyframe: "
          f"{', '.join(map(str, new)) or 'none'}; drawn tracks merged away: {len(res.deleted_tracks)}; "
          f"skipped (not annotated: unlabelled or only propagated): {', '.join(map(str, res.skipped)) or 'none'}"
          + (f" (only propagated: {', '.join(map(str, res.not_annotated))})" if res.not_annotated else "") + "; "
          f"kept fixed (confirmed): {', '.join(map(str, res.fixed)) or 'none'}")
    for f in res.flags:
        print(f"flag {f.kind:10s} frame {f.frame:5d} track {f.track:5d}: {f.message}")
    if res.undo_id:
        print(f"{len(res.flags)} review flags; undo with "
              f"`main.py correct {args.project} --video {args.video} undo --id {res.undo_id}`")
        if res.stale_propagation:  # association relabels keyframes only; propagated frames keep their ids
            print(f"note: keyframe ids changed after the last propagation; re-run "
                  f"`main.py propagate {args.project} --video {args.video}`")
    else:  # no undo step was recorded: `undo` would revert an *earlier* step, so do not suggest it
        print(f"{len(res.flags)} review flags; no track id changed, so there is nothing to undo")
    return 0


def _category(video: Any, text: str) -> int:
    try:
        return video.taxonomy.get(int(text)).id
    except ValueError:
        return video.taxonomy.by_name(text).id


def run_correct(args: argparse.Namespace) -> int:
    from annotator.stages import corrections
    from annotator.stages.correct import CorrectionOptions, run_correction

    video = _open(args, readonly=args.op == "history")  # listing the steps needs no write access
    try:
        if args.op == "undo":
            event = corrections.undo_last(video, args.undo_id)
            print(f"undid {event.get('kind')} {event.get('op')} ({event['undo']})")
            if corrections.propagated_since(video, event["undo"]):
                # undo only reverts what the step wrote; frames propagated after it keep its ids
                print(f"note: frames propagated after this step still carry its track ids; re-run "
                      f"`main.py propagate {args.project} --video {args.video}`")
            return 0
        if args.op == "history":
            stack = corrections.undo_stack(video)
            for e in stack:
                detail = {k: v for k, v in e.items() if k not in ("kind", "op", "undo")}
                print(f"{e['undo']}  {e['kind']:11s} {e.get('op')}  {detail}")
            print(f"{len(stack)} steps can be undone")
            confirmed = sorted(corrections.confirmed_keyframes(video))
            print(f"confirmed keyframes: {', '.join(map(str, confirmed)) or 'none'}")
            return 0
        params: dict[str, Any]
        if args.op == "reassign":
            params = {"track": args.track, "to_track": None if args.new else args.to, "from_frame": args.frame}
        elif args.op == "swap":
            params = {"track_a": args.track_a, "track_b": args.track_b, "from_frame": args.frame}
        elif args.op == "merge":
            params = {"keep": args.keep, "absorb": args.absorb}
        elif args.op == "split":
            params = {"track": args.track, "at_frame": args.frame}
        elif args.op in ("confirm", "unconfirm"):
            params = {"frame": args.frame}
        elif args.op == "set-class":
            params = {"track": args.track, "category_id": _category(video, args.category)}
        else:
            params = {"track": args.track}
        run = run_correction(video, CorrectionOptions(args.op, params, not args.no_reassociate, args.propagator))
        res, assoc = run.correction, run.association
    finally:
        video.close()
    print(f"{res.op}: changed {len(res.frames)} frames"
          + (f", new track {res.new_track}" if res.new_track is not None else "")
          + (f", confirmed keyframe {', '.join(map(str, res.confirmed))}" if res.confirmed else "")
          + (f", unconfirmed keyframe {', '.join(map(str, res.unconfirmed))}" if res.unconfirmed else "")
          + (f"; re-associated {len(assoc.keyframes)} keyframes ({len(assoc.flags)} flags)" if assoc else "")
          + f"; undo id {res.undo_id}")
    return 0
