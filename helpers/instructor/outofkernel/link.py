"""One run of the harness (``inside/child.py``) in the sandbox: commands in, replies out, with deadlines.

The grader writes commands on the child's stdin and reads one reply line per command from a pipe
that only the child holds; it never blocks on either (a child that stops reading or writing is a
timeout), never reads more than ``MAX_LINE`` bytes for one reply, and keeps the last few KB of the
child's stderr for messages. When the child's process has exited, or the pipe is closed, the reply
is ``"eof"``: the grader tells how a step ended from the process and its own clock, never from
what the child says about itself.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

CHILD = Path(__file__).resolve().parents[1] / "inside" / "child.py"
MAX_LINE = 8 * 2 ** 20          # the largest reply of a right answer is about 33 KB
ERR_TAIL = 4096


class Link:
    def __init__(self, box, python: str = sys.executable):
        r, w = os.pipe()
        er, ew = os.pipe()
        err = os.fdopen(ew, "wb")
        try:
            self.proc = box.spawn([python, "-I", str(CHILD), str(w)], pass_fds=(w,), env={"MPLBACKEND": "Agg"},
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        except BaseException:
            os.close(r)
            os.close(er)
            raise
        finally:
            os.close(w)
            err.close()
        try:
            self.pgid = os.getpgid(self.proc.pid)
        except OSError:
            self.pgid = None
        self.r, self.er = r, er
        self.w = self.proc.stdin.fileno()
        os.set_blocking(self.w, False)
        self.out, self.scanned, self.pending, self.err = bytearray(), 0, b"", b""
        self.eof = False

    def send(self, obj: dict) -> None:
        self.pending += json.dumps(obj, separators=(",", ":")).encode() + b"\n"

    def receive(self, deadline: float):
        """Write what is pending and return the next reply line (bytes), ``"timeout"``, ``"eof"`` or
        ``"oversized"``."""
        while True:
            nl = self.out.find(b"\n", self.scanned)
            if nl >= 0:
                line = bytes(self.out[:nl])
                del self.out[:nl + 1]
                self.scanned = 0
                return line
            self.scanned = len(self.out)
            if len(self.out) > MAX_LINE:
                return "oversized"
            if self.eof:
                return "eof"
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            reading = [fd for fd in (self.r, self.er) if fd is not None]
            writing = [self.w] if self.pending and self.w is not None else []
            ready, can_write, _ = select.select(reading, writing, [], min(left, 0.2))
            for fd in ready:
                chunk = os.read(fd, 1 << 20)
                if fd == self.er:
                    self.err = (self.err + chunk)[-ERR_TAIL:]
                    if not chunk:
                        os.close(self.er)
                        self.er = None
                elif chunk:
                    self.out += chunk
                else:
                    self.eof = True
            if can_write:
                try:
                    n = os.write(self.w, self.pending)
                    self.pending = self.pending[n:]
                except BlockingIOError:
                    pass
                except OSError:           # it closed its stdin or died: no command reaches it any more
                    self.pending, self.eof = b"", True
            if self.r not in ready and not can_write and self.proc.poll() is not None:
                self.eof = True

    def stderr_tail(self, n: int = 300) -> str:
        return self.err.decode("utf-8", "replace").strip()[-n:]

    def close(self) -> None:
        try:
            if self.pgid == self.proc.pid:   # it leads its own group: what it started goes too
                os.killpg(self.pgid, 9)
        except OSError:
            pass
        try:
            self.proc.kill()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for fd in (self.r, self.er):
            if fd is not None:
                os.close(fd)
        self.r = self.er = None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
