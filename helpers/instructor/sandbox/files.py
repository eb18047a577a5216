"""Files a box starts with: the submission's staged files and a shared matplotlib font cache."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def stage_files(sources, limit: int = 50 * 2 ** 20) -> Path | None:
    """A root-owned copy of the regular files under ``sources`` (never a symlink, a dot file or a
    notebook), at most ``limit`` bytes in all, to give a box as ``files_dir``; ``None`` if there are none.
    The folder is world-readable (the sandbox user copies from it) inside a private temp folder."""
    import stat

    top = Path(tempfile.mkdtemp(prefix="cnn-stage-"))
    dest_root = top / "files"
    dest_root.mkdir(mode=0o755)
    os.chmod(dest_root, 0o755)
    total = n = 0
    for src in [Path(s) for s in sources if s]:
        if not src.is_dir() or src.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and not os.path.islink(os.path.join(dirpath, d))]
            rel = os.path.relpath(dirpath, src)
            for name in filenames:
                path = os.path.join(dirpath, name)
                if name.endswith(".ipynb") or name.startswith("."):
                    continue
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue
                with os.fdopen(fd, "rb") as fh:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode) or total + st.st_size > limit:
                        continue
                    total += st.st_size
                    out = dest_root / rel / name
                    out.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                    with open(out, "wb") as dst:
                        shutil.copyfileobj(fh, dst)
                    os.chmod(out, 0o644)
                    n += 1
    if not n:
        shutil.rmtree(top, ignore_errors=True)
        return None
    return dest_root


_MPL: list = []


def prepare_scratch(box, files_dir=None) -> None:
    """The first process of a box, as its user: make the scratch folder a home, with the font cache
    (and the staged files ``files_dir``, if given: see :func:`add_files`). Root itself never writes
    into the scratch folder."""
    from . import bwrap

    mpl = matplotlib_cache()
    script = "mkdir -p tmp .config/matplotlib .ipython .jupyter .local/share/jupyter/runtime"
    if mpl:
        script += " && cp /cnn-mpl/fontlist*.json .config/matplotlib/"
    if files_dir:
        script += f" && cp -R --no-preserve=mode,ownership {bwrap.INPUT}/. ."
    _run_as_user(box, script, [(mpl, "/cnn-mpl")] if mpl else [], files_dir)


def add_files(box, files_dir) -> None:
    """Copy the staged files ``files_dir`` (bound read-only) into the box's scratch folder, as the
    box's user. The worker does this after the submission's kernel has started, so that nothing
    of the submission takes part in starting it."""
    from . import bwrap

    _run_as_user(box, f"cp -R --no-preserve=mode,ownership {bwrap.INPUT}/. .", [], files_dir)


def _run_as_user(box, script: str, binds: list, files_dir) -> None:
    from . import bwrap
    from .policy import SandboxError

    if files_dir:
        binds = binds + [(str(files_dir), bwrap.INPUT)]
    proc = box.spawn(["/bin/sh", "-c", script], ro_binds=binds, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise SandboxError(f"the sandbox could not prepare its scratch folder (exit {proc.returncode}): "
                           f"{err.decode(errors='replace').strip()[-400:]}")


def matplotlib_cache() -> str | None:
    """A matplotlib font cache, built once per machine (building it in each box costs seconds),
    in a root-owned folder, by the grader's own Python with ``-I`` (no student input)."""
    if _MPL:
        return _MPL[0]
    try:
        import matplotlib
        version = matplotlib.__version__
    except Exception:
        _MPL.append(None)
        return None
    final = os.path.join(tempfile.gettempdir(), f"cnn-course-mpl-cache-{version}-{os.getuid()}")
    if not (os.path.isdir(final) and not os.path.islink(final) and os.stat(final).st_uid == os.getuid()
            and any(Path(final).glob("fontlist*.json"))):
        build = tempfile.mkdtemp(prefix="cnnsb-mpl-")
        try:
            subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], cwd=build, timeout=120,
                           env={"PATH": "/usr/bin:/bin", "MPLCONFIGDIR": build, "HOME": build}, capture_output=True)
            os.chmod(build, 0o755)
            if any(Path(build).glob("fontlist*.json")):
                try:
                    os.rename(build, final)
                except OSError:
                    pass
        finally:
            shutil.rmtree(build, ignore_errors=True)
    ok = os.path.isdir(final) and any(Path(final).glob("fontlist*.json"))
    if ok:   # readable by the sandbox user (bound read-only into each new box)
        os.chmod(final, 0o755)
        for f in Path(final).glob("fontlist*.json"):
            os.chmod(f, 0o644)
    _MPL.append(final if ok else None)
    return _MPL[0]
