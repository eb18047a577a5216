"""Generate the student edition (``release/``) of the assignments with nbgrader."""
from __future__ import annotations

from pathlib import Path

from .course import ASSIGNMENTS, get
from .nbapi import CourseError, make_api


def release(config, assignments: list[str] | None = None, stream=None) -> list[Path]:
    """Run ``generate_assignment`` for each assignment; return the release folders."""
    ids = [a.id for a in ASSIGNMENTS] if not assignments else list(assignments)
    for a in ids:
        get(a)
    root = Path(config.CourseDirectory.root)
    source = root / config.CourseDirectory.get("source_directory", "source")
    api = make_api(config)
    out = []
    for a in ids:
        if not (source / a).is_dir():
            raise CourseError(f"no source folder {source / a}")
        res = api.generate_assignment(a, force=True, create=True)
        if not res.get("success"):
            raise CourseError(f"generate_assignment {a} failed:\n{(res.get('error') or res.get('log') or '')[-2000:]}")
        folder = root / config.CourseDirectory.get("release_directory", "release") / a
        out.append(folder)
        if stream is not None:
            print(f"released {a} -> {folder}", file=stream)
    return out
