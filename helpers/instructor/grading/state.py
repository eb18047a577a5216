"""What was graded: one JSON record per submission in ``<root>/.cnn-course-state/<assignment>/<student>.json``.

A record holds when it was graded, the submission's ``timestamp.txt`` (as nbgrader reads it) and
the content hash of the staged copy that was graded. :func:`decide` compares them with the
submission as it is now, as nbgrader does with timestamps: a submission that is newer, or whose
content differs, is regraded (nbgrader replaces its grades, so nothing is doubled); an unchanged
one is skipped. Earlier records are kept in the record's ``history``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

STATE_DIR = ".cnn-course-state"


def state_file(root: Path, assignment: str, student: str) -> Path:
    return Path(root) / STATE_DIR / assignment / f"{student}.json"


def read(root: Path, assignment: str, student: str) -> dict | None:
    path = state_file(root, assignment, student)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write(root: Path, assignment: str, student: str, record: dict) -> None:
    old = read(root, assignment, student)
    if old:
        history = old.pop("history", [])
        record["history"] = (history + [old])[-20:]
    record.setdefault("graded_at", time.time())
    path = state_file(root, assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def parse_timestamp(text: str | None):
    """nbgrader's reading of ``timestamp.txt`` (a UTC datetime), or None."""
    if not text:
        return None
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text)
    except Exception:   # "9" * 30 overflows; anything unreadable is no timestamp
        return None


def decide(record: dict | None, graded_dir_exists: bool, digest: str, timestamp: str | None,
           graded_timestamp: str | None = None) -> tuple[str, str]:
    """``("skip", reason)``, ``("grade", note)`` or ``("regrade", note)`` for one submission."""
    if record is None:
        if graded_dir_exists:
            return "regrade", ""          # interrupted earlier: grade again from scratch
        return "grade", ""
    if not graded_dir_exists:
        return "grade", ""
    old_digest = record.get("digest")
    old_ts = parse_timestamp(record.get("timestamp") if "timestamp" in record else graded_timestamp)
    new_ts = parse_timestamp(timestamp)
    if "timestamp" in record:
        newer = new_ts is not None and (old_ts is None or new_ts > old_ts)
    else:   # a record from before timestamps were kept: nbgrader's own rule
        newer = new_ts is not None and old_ts is not None and new_ts > old_ts
    changed = bool(old_digest) and old_digest != digest
    if newer or changed:
        return "regrade", "resubmitted: regraded"
    return "skip", "already graded, unchanged (use --force to regrade)"
