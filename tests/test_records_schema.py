"""Issue #28: every record read from disk is validated (one schema per file kind, one message shape).

The two headline cases (a journal frame record with an unknown state; a journal track record
whose class is not in the taxonomy) and each smaller one: ``correct`` checks integrity first, a
refusal leaves no empty journal, ``info`` exits non-zero on a problem, locks that never expire
name ``unlock --force``, ``weights check`` of a device or FIFO says it is not a regular file.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from annotator.cli import main as cli_main
from annotator.project import Project
from annotator.store import atomic_write_json
from tests import records_project as rp

VIDEO = rp.VIDEO


@pytest.fixture
def proj(tmp_path) -> Path:
    return rp.copy(tmp_path)


def _folder(proj: Path) -> Path:
    return proj / "videos" / VIDEO


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _append_journal(proj: Path, record: dict) -> None:
    path = _folder(proj) / "journal.jsonl"
    seq = max(json.loads(ln)["seq"] for ln in path.read_text().splitlines())
    with open(path, "a") as fh:
        fh.write(json.dumps({**record, "seq": seq + 1}) + "\n")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------- headline cases
def test_journal_frame_state_bogus_is_named_not_a_traceback(proj, tmp_path, capsys):
    _append_journal(proj, {"op": "frame", "i": 0, "state": "bogus", "provenance": {}, "tracks": [1, 2]})
    before = _snapshot(_folder(proj))
    assert cli_main(["info", str(proj), "--video", VIDEO]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "journal.jsonl, line 9, key 'state': found string 'bogus', expected a frame state" in captured.out
    assert "restore journal.jsonl from a backup" in captured.out  # what to do
    out = tmp_path / "out"
    assert cli_main(["export", str(proj), "--format", "vipseg", "--out", str(out), "--no-resize"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "export" in line and "refused" in line and "'bogus'" in line and "line 9" in line
    assert not out.exists()
    assert cli_main(["propagate", str(proj), "--video", VIDEO]) == 2
    assert "'bogus'" in _one_error_line(capsys.readouterr().err)
    assert cli_main(["correct", str(proj), "--video", VIDEO, "swap", "5", "6"]) == 2
    assert "'bogus'" in _one_error_line(capsys.readouterr().err)
    assert cli_main(["score", "--gt", str(proj), "--pred", str(proj)]) == 2
    assert "scoring" in (line := _one_error_line(capsys.readouterr().err)) and "'bogus'" in line
    assert _snapshot(_folder(proj)) == before  # nothing is changed by a read or a refusal


def test_journal_track_category_not_in_taxonomy_is_refused(proj, tmp_path, capsys):
    _append_journal(proj, {"op": "track", "id": 1, "category_id": 999, "note": ""})
    assert cli_main(["info", str(proj)]) == 1
    out = capsys.readouterr().out
    assert "key 'category_id': found unknown class id 999, expected a category id of the project's taxonomy " \
        "(0..123)" in out
    dest = tmp_path / "out"
    assert cli_main(["export", str(proj), "--format", "vipseg", "--out", str(dest), "--no-resize"]) == 2
    assert "999" in _one_error_line(capsys.readouterr().err)
    assert not dest.exists()
    from annotator.project import SchemaError

    with pytest.raises(SchemaError) as exc:
        Project.open(proj).open_video(VIDEO, readonly=True)
    assert [i.where for i in exc.value.issues] == ["line 9, key 'category_id'"]


def test_video_json_track_category_not_in_taxonomy(proj, tmp_path, capsys):
    vjson = _folder(proj) / "video.json"
    doc = json.loads(vjson.read_text())
    doc["tracks"][0]["category_id"] = 500
    vjson.write_text(json.dumps(doc))
    assert cli_main(["info", str(proj)]) == 1
    assert "key 'category_id' of 'tracks[0]': found unknown class id 500" in capsys.readouterr().out
    dest = tmp_path / "out"
    assert cli_main(["export", str(proj), "--format", "ytvis", "--out", str(dest)]) == 2
    assert "500" in _one_error_line(capsys.readouterr().err)


def test_journal_record_checks_each_operation():
    from annotator.project import check_journal_record

    def where(r: dict) -> list[str]:
        return [i.where for i in check_journal_record({"seq": 5, **r}, 3, "journal.jsonl", 4)]

    assert where({"op": "frame", "i": 0, "state": "manual", "provenance": {"1": "manual"}, "tracks": [1]}) == []
    assert where({"op": "frame", "i": 4, "state": "manual", "provenance": {}, "tracks": []}) == ["line 3, key 'i'"]
    assert where({"op": "frame", "i": 0, "state": "manual", "provenance": {"1": "x"}, "tracks": [1]}) == \
        ["line 3, key '1' of 'provenance'"]
    assert where({"op": "track", "id": 0, "category_id": 1}) == ["line 3, key 'id'"]
    assert where({"op": "track_del"}) == ["line 3, key 'id'"]
    assert where({"op": "keyframes", "keyframes": [0, 9]}) == ["line 3, key 'keyframes'"]
    assert where({"op": "log", "event": {"no": "kind"}}) == ["line 3, key 'event'"]
    assert where({"op": "unknown"}) == ["line 3, key 'op'"]
    assert where({"op": "txn_file", "txn": "a", "path": "../../etc/passwd"}) == ["line 3, key 'path'"]
    assert [i.where for i in check_journal_record({"op": "log", "event": {"kind": "k"}}, 2, "j", 4)] == \
        ["line 2, key 'seq'"]  # without its sequence number a record would be skipped as folded
    issue = check_journal_record([1], 7, "j.jsonl", 4)[0]
    assert str(issue).startswith("j.jsonl, line 7: found list [1], expected a journal record")


def test_duplicated_journal_line_is_named(proj, capsys):
    path = _folder(proj) / "journal.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[2]]) + "\n")
    assert cli_main(["info", str(proj)]) == 1
    assert "line 9, key 'seq': found 14 after 19, expected sequence numbers that grow" in capsys.readouterr().out


def test_project_json_taxonomy_schema(proj, capsys):
    pj = proj / "project.json"
    doc = json.loads(pj.read_text())
    cats = doc["taxonomy"]["categories"] if isinstance(doc["taxonomy"], dict) else doc["taxonomy"]
    cats[1]["id"] = cats[0]["id"]
    from annotator.project import check_project_doc

    assert [i.where for i in check_project_doc(doc)] == ["key 'id' of 'taxonomy.categories[1]'"]
    pj.write_text(json.dumps(doc))
    assert cli_main(["info", str(proj)]) == 2
    assert "a second time" in _one_error_line(capsys.readouterr().err)


def test_review_json_schema_is_checked_on_read(proj, capsys):
    path = _folder(proj) / "review.json"
    doc = json.loads(path.read_text())
    from annotator.project import SchemaError
    from annotator.review import ReviewStore, check_review_doc

    assert check_review_doc(doc, "review.json", 3) == []
    doc["decisions"][1]["id"] = 7  # a frame the video does not have
    doc["flags"][0]["kind"] = "bogus"
    atomic_write_json(path, doc, "review")
    assert cli_main(["info", str(proj)]) == 1
    out = capsys.readouterr().out
    assert "key 'id' of 'decisions[1]': found integer 7, expected a frame index 0..2" in out
    assert "key 'kind' of 'flags[0]': found string 'bogus'" in out
    with Project.open(proj).open_video(VIDEO, readonly=True) as v, pytest.raises(SchemaError, match="bogus"):
        ReviewStore(v)


def test_effort_log_lines_are_checked_but_a_torn_tail_is_not(proj, capsys):
    path = _folder(proj) / "effort.jsonl"
    path.write_text(path.read_text() + '{"t": 1.0, "op": "zap"}\n{"t": 1')  # a bad line, then a torn tail
    assert cli_main(["info", str(proj)]) == 1
    out = capsys.readouterr().out
    assert "effort.jsonl" in out and "line 3, key 'op': found string 'zap'" in out and "line 4" not in out


# ----------------------------------------------------------------------------------- smaller cases
def test_correct_checks_integrity_first_and_changes_nothing(proj, capsys):
    (_folder(proj) / "labels" / "00001.png").unlink()  # a reviewed frame lost its label PNG
    before = _snapshot(_folder(proj))
    assert cli_main(["correct", str(proj), "--video", VIDEO, "swap", "5", "6"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "correct swap" in line and "refused" in line and "00001.png" in line
    assert cli_main(["associate", str(proj), "--video", VIDEO, "--propagator", "copy"]) == 2
    assert "associate" in _one_error_line(capsys.readouterr().err)
    assert _snapshot(_folder(proj)) == before
    assert not (_folder(proj) / ".txn").exists()


def test_a_refused_writable_command_leaves_no_empty_journal(tmp_path, capsys):
    proj = tmp_path / "q.vpsproj"
    rp.write_demo_project(proj, num_frames=10, height=48, width=64, source=None)
    folder = proj / "videos" / VIDEO
    before = _snapshot(folder)
    # tracks 1 and 2 are of different classes: the swap is refused inside its transaction
    assert cli_main(["correct", str(proj), "--video", VIDEO, "swap", "1", "2"]) == 2
    assert "change the class first" in _one_error_line(capsys.readouterr().err)
    assert not (folder / "journal.jsonl").exists()
    assert _snapshot(folder) == before


def test_info_exits_non_zero_when_it_reports_a_problem(proj, capsys):
    assert cli_main(["info", str(proj)]) == 0
    (_folder(proj) / "frames" / "00002.jpg").unlink()
    assert cli_main(["info", str(proj)]) == 1
    assert cli_main(["info", str(proj), "--json"]) == 1
    assert "frame image is missing" in capsys.readouterr().out


def _write_lock(proj: Path, raw: bytes | None = None, **fields) -> None:
    now = time.time()
    info = {"user": "ann", "host": socket.gethostname(), "pid": 1, "created": now, "heartbeat": now,
            "token": "t" * 32, **fields}
    (_folder(proj) / ".lock").write_bytes(raw if raw is not None else json.dumps(info).encode())


@pytest.mark.parametrize("case", ["reused_pid", "future_heartbeat", "damaged"])
def test_locks_that_never_expire_name_unlock_force(proj, capsys, case):
    if case == "reused_pid":  # pid 1 runs since boot, before the lock: alive, but not the editor
        _write_lock(proj, pid=1, created=time.time())
    elif case == "future_heartbeat":
        _write_lock(proj, host="elsewhere", pid=4242, heartbeat=time.time() + 10 * 86400)
    else:  # garbage written just now: no holder to name, no "there" to close it in
        _write_lock(proj, raw=b"\x00garbage{")
    with Project.open(proj).open_video(VIDEO) as video:
        assert video.readonly
        assert f"main.py unlock {proj.resolve()} --video {VIDEO} --force" in video.lock_message
    assert cli_main(["correct", str(proj), "--video", VIDEO, "swap", "5", "6"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--force" in line and "unlock" in line
    if case == "damaged":
        assert "close it there" not in line and "damaged" in line
    if case == "future_heartbeat":
        assert "future" in line
    assert cli_main(["unlock", str(proj), "--video", VIDEO]) == 1
    assert "--force" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_weights_check_of_a_device_or_fifo_is_not_a_regular_file(tmp_path, capsys, kind):
    if kind == "device":
        path = Path("/dev/urandom")
        if not path.exists():
            pytest.fail("/dev/urandom is missing on this machine")
    else:
        path = tmp_path / "pipe"
        os.mkfifo(path)
    assert cli_main(["weights", "check", str(path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "not a regular file" in line and "empty" not in line
    assert ("character device" if kind == "device" else "FIFO") in line


def test_a_damaged_export_marker_does_not_let_overwrite_delete(proj, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["export", str(proj), "--format", "vipseg", "--out", str(out), "--no-resize", "--overwrite"]
    assert cli_main(argv) == 0  # a real export: its marker is valid, so it can be replaced
    assert cli_main(argv) == 0
    capsys.readouterr()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / ".vps_annotator_export").write_text("")  # a stray, empty marker
    argv[5] = str(mine)
    assert cli_main(argv) == 2
    assert "intact .vps_annotator_export" in _one_error_line(capsys.readouterr().err)
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_video_json_seq_beyond_the_journal_is_named(proj, capsys):
    """A ``seq`` past the journal's last record would make every record count as folded (skipped)."""
    vjson = _folder(proj) / "video.json"
    doc = json.loads(vjson.read_text())
    doc["seq"] = 10**12
    vjson.write_text(json.dumps(doc))
    assert cli_main(["info", str(proj)]) == 1
    assert "video.json, key 'seq': found 1000000000000, beyond the journal's last record (19)" in \
        capsys.readouterr().out


def test_a_commit_naming_another_transaction_is_named(proj, capsys):
    """Found by the fuzz: a ``txn_commit`` whose id was changed left its transaction silently unapplied."""
    path = _folder(proj) / "journal.jsonl"
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["op"] == "txn_commit"
    lines[-1] = json.dumps({**last, "txn": "bogus"})
    path.write_text("\n".join(lines) + "\n")
    assert cli_main(["info", str(proj)]) == 1
    assert "line 8, key 'txn': found string 'bogus', expected the open transaction's id" in capsys.readouterr().out
