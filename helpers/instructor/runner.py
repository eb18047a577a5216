"""Execute notebooks top to bottom (the reference editions, the releases) and time them."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import nbformat

from .course import ASSIGNMENTS


def execute_notebook(path: Path | str, *, timeout: int = 120, allow_errors: bool = False, cwd: Path | str | None = None,
                     env: dict | None = None):
    """Run a notebook in a fresh kernel from its own folder. Returns ``(executed notebook, seconds)``."""
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.util import run_sync

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    t0 = time.perf_counter()
    # IPC sockets, not TCP: nothing on the network, and no "running over TCP" warning per notebook.
    # The socket path must be absolute: the kernel runs in the notebook's folder, the client here.
    with tempfile.TemporaryDirectory(prefix="cnn-course-kernel-") as run_dir:
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(run_dir, "kernel"))
        try:
            NotebookClient(nb, km=km, timeout=timeout, allow_errors=allow_errors, kernel_name="python3",
                           resources={"metadata": {"path": str(cwd or path.parent)}}).execute(
                **({"env": env} if env is not None else {}))
        finally:   # a client given its kernel manager leaves the kernel running: stop it here
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)
    return nb, time.perf_counter() - t0


def error_outputs(nb) -> list[tuple[int, str, str]]:
    """(cell index, ename, evalue) of every error output."""
    return [(i, o.ename, o.evalue) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "error"]


def text_of(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            parts.append(o.get("data", {}).get("text/plain", ""))
        elif o.output_type == "error":
            parts.append(f"{o.ename}: {o.evalue}")
    return "".join(parts)


def run_sources(root: Path, stream=None, jobs: int = 1) -> dict[str, float]:
    """Execute every source notebook, ``jobs`` at a time; raise if any cell errors.

    Returns the seconds each notebook took (its own wall time, kernel start included).
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(a):
        path = Path(root) / "notebooks" / a.id / f"{a.notebook}.ipynb"
        nb, seconds = execute_notebook(path)
        errors = error_outputs(nb)
        if errors:
            raise RuntimeError(f"{path}: cells raised errors: {errors}")
        if stream is not None:
            print(f"  {a.id:<22} {seconds:6.2f} s", file=stream, flush=True)
        return a.id, seconds

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        times = dict(pool.map(one, ASSIGNMENTS))
    return {a.id: times[a.id] for a in ASSIGNMENTS}
