"""A box without isolation (``--no-sandbox``, trusted code only), with :class:`~.box.Box`'s interface."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .env import base_env
from .policy import Policy


class NullBox:
    """No isolation (``--no-sandbox``, trusted code only): a temp folder, the grader's own user."""

    root_mode = False

    def __init__(self, policy: Policy | None = None, label: str = "nosandbox", files_dir=None):
        self.policy, self.label, self.closed, self._procs = policy or Policy(enabled=False), label, False, []
        self.base = Path(tempfile.mkdtemp(prefix="cnnnb-"))
        self.scratch = str(self.base)
        if files_dir:
            self.add_files(files_dir)
        os.makedirs(self.base / "tmp", exist_ok=True)

    def add_files(self, files_dir) -> None:
        shutil.copytree(files_dir, self.base, dirs_exist_ok=True, symlinks=True)

    def env(self) -> dict:
        env = {**os.environ, **base_env(self.scratch, os.environ.get("USER", "user"))}
        # no sandbox, so no read-only /usr: the configuration folders go in the temp folder
        env.update(IPYTHONDIR=f"{self.scratch}/.ipython", JUPYTER_CONFIG_DIR=f"{self.scratch}/.jupyter")
        return env

    def spawn(self, cmd, pass_fds=(), env=None, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
              stderr=None, **_) -> subprocess.Popen:
        proc = subprocess.Popen(list(cmd), pass_fds=tuple(pass_fds), env={**self.env(), **(env or {})},
                                stdin=stdin, stdout=stdout, stderr=stderr, cwd=self.scratch, start_new_session=True)
        self._procs.append(proc)
        return proc

    def kill_strays(self, km) -> int:
        return 0

    def next_name(self, stem: str) -> str:
        return stem

    def log_tail(self, name: str, lines: int = 5) -> str:
        return ""

    def kernel_manager(self):
        from .provisioner import CappedKernelManager

        return CappedKernelManager(kernel_name="python3")

    def start_kernel(self):
        from jupyter_core.utils import run_sync

        km = self.kernel_manager()
        run_sync(km.start_kernel)(cwd=self.scratch, env=self.env())
        return km

    def end_processes(self, seconds: float = 5.0) -> None:
        """Nothing to end: a NullBox's children are ended by the out-of-kernel check itself."""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for proc in self._procs:
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)

    cleanup = close    # the old name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
