"""CLI: ``unlock`` - show who holds a video's edit lock, and break it with ``--force``.

    python main.py unlock PROJECT --video V [--force]

Why a command: a lock is taken over automatically when its process is gone (same machine: the pid
is dead or belongs to a process started after the lock) or its heartbeat is older than 15 minutes
(another machine). Two cases stay locked for ever without it: a lock whose pid now belongs to an
unrelated process that was already running (pid reuse across a reboot), and a lock whose
heartbeat lies in the future (a machine with a wrong clock). Breaking a lock of a live editor
would let two writers corrupt the video, so the command first shows the holder and only
``--force`` removes it (atomically: only the lock it showed).
"""

from __future__ import annotations

import argparse
import socket
import time
from typing import TYPE_CHECKING

from annotator.errors import ProjectError

if TYPE_CHECKING:
    from annotator.store import LockInfo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("unlock", help="show who holds a video's edit lock; --force breaks it")
    p.add_argument("project", help="project folder (NAME.vpsproj)")
    p.add_argument("--video", required=True, help="video id")
    p.add_argument("--force", action="store_true",
                   help="remove the lock (only if the holder is not editing the video any more)")
    p.set_defaults(func=run_unlock)


def _assessment(info: LockInfo) -> str:
    """Why the lock is (not) taken over automatically, in words."""
    from annotator.store import STALE_AFTER_S, VideoLock

    now = time.time()
    if info.pid < 0:
        return "the lock file is unreadable (damaged, or being written this instant)"
    if VideoLock.is_stale(info):
        return "stale: its process is gone; the next writer takes it over anyway"
    if info.heartbeat > now + 60:
        return (f"its heartbeat lies {info.heartbeat - now:.0f} s in the future (a clock set wrong on "
                f"{info.host}), so it would never expire")
    if info.host == socket.gethostname():
        return (f"process {info.pid} ({_command_of(info.pid)}) is running on this machine: it is the "
                "editor, or an unrelated process that got the same pid after a restart")
    return (f"held from another machine; last heartbeat {now - info.heartbeat:.0f} s ago "
            f"(taken over automatically after {STALE_AFTER_S} s without one)")


def _command_of(pid: int) -> str:
    """The holder's command line, so the user can tell the editor from an unrelated process."""
    import psutil

    try:
        cmd = " ".join(psutil.Process(pid).cmdline()) or psutil.Process(pid).name()
    except psutil.Error:
        return "command unknown"
    return cmd if len(cmd) <= 80 else cmd[:77] + "..."


def run_unlock(args: argparse.Namespace) -> int:
    from annotator.project import Project, _check_video_id
    from annotator.store import VideoLock

    project = Project.open(args.project)
    folder = project.videos_dir / _check_video_id(args.video)
    if not folder.is_dir():
        raise ProjectError(f"no video {args.video!r} in {project.path}")
    lock = VideoLock(folder / ".lock")
    if lock.path.is_dir():
        print(f"video {args.video!r}: {lock.path} is a folder, not a lock file")
        if not args.force:
            print("nothing changed; run again with --force to remove it (only if it is empty)")
            return 1
        lock.force_break()
        print(f"removed the folder {lock.path}")
        return 0
    info = lock.holder()
    if info is None:
        print(f"video {args.video!r} is not locked")
        return 0
    print(f"video {args.video!r} is locked by {info.describe()}: {_assessment(info)}")
    if not args.force:
        who = "nobody is editing the video" if info.pid < 0 else "that process is not editing the video any more"
        print(f"nothing changed; if {who}, run again with --force "
              f"(`main.py unlock {args.project} --video {args.video} --force`)")
        return 1
    removed = lock.force_break()
    if removed is None:
        print("the lock was released meanwhile; nothing to do")
    else:
        print(f"removed the lock of {removed.describe()}; the video can be opened for writing")
    return 0
