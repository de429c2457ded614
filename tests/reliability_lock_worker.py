"""Lock-race worker: open a video for writing, say whether it got the lock, hold it a while.

    python tests/reliability_lock_worker.py PROJECT PAUSE HOLD

``PAUSE``: seconds this opener sleeps between finding the lock stale and taking it over (the
``VideoLock.takeover_pause`` test hook), to land in the window a slow process would. ``HOLD``:
seconds to keep the video open as writer, writing one log event (a lost write shows up there).
Prints ``writer`` or ``readonly`` then ``done``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator.project import Project  # noqa: E402
from annotator.store import VideoLock  # noqa: E402


def main() -> int:
    project, pause, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    VideoLock.takeover_pause = pause
    video = Project.open(project).open_video("v")
    print("readonly" if video.readonly else "writer", flush=True)
    if not video.readonly:
        video.log_event("race", {"pid": __import__("os").getpid()})
        time.sleep(hold)
    video.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
