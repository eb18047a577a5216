"""Kernels in a box, through jupyter_client's kernel provisioner API.

Transport. Root creates the kernel's five listening ``AF_UNIX`` sockets itself, in the box's
root-owned 0700 ``run/`` folder, writes the connection file there (transport ``ipc``, ``ip`` = that
folder's prefix, ports 1..5) and passes the listening fds into the sandbox.
``inside/kernel_boot.py`` makes ipykernel adopt them (``ZMQ_USE_FD``); the connection file is
copied in read-only (``--ro-bind-data``). The grader connects to its own sockets in its own
folder: nothing the sandbox user can write is on any path root opens, follows or writes.

The kernelspec (``kernels/cnn-sandbox/kernel.json`` in the box's root-owned folder, found through
``KernelSpecManager(kernel_dirs=[...])``) names this provisioner in
``metadata.kernel_provisioner``; it is registered as the entry point ``cnn-course-sandbox`` of
group ``jupyter_client.kernel_provisioners``.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Integer, Unicode

KERNEL_BOOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "inside", "kernel_boot.py")
INNER_CONNECTION = "/cnn-kernel/connection.json"
PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
SPEC_NAME = "cnn-sandbox"


class CappedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose clients refuse messages above ``max_message_bytes`` (ZeroMQ MAXMSGSIZE)."""

    max_message_bytes = Integer(32 * 2 ** 20).tag(config=True)

    def client(self, **kwargs):
        import zmq

        kc = super().client(**kwargs)
        kc.context.setsockopt(zmq.MAXMSGSIZE, int(self.max_message_bytes))
        return kc


class SandboxProvisioner(LocalProvisioner):
    """Starts the kernel in a new sandbox of the box ``box_id`` (of this process), on root's sockets."""

    box_id = Unicode("", config=True)

    def _box(self):
        from .box import lookup

        return lookup(self.box_id)

    async def pre_launch(self, **kwargs):
        km = self.parent
        box = self._box()
        km.transport = "ipc"
        for name, port in PORTS.items():
            setattr(km, name, port)
        self._listeners = {}
        for port in PORTS.values():
            path = f"{km.ip}-{port}"
            if os.path.lexists(path):       # root's own folder (0700): an old socket of this kernel
                os.unlink(path)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.listen(64)
            self._listeners[port] = s
        kwargs = await super().pre_launch(**kwargs)   # writes the connection file (root's folder)
        kwargs["env"] = {**box.env(), "CNN_KERNEL_FDS": ",".join(f"{p}:{s.fileno()}" for p, s in self._listeners.items())}
        kwargs["cwd"] = "/"
        del box
        return kwargs

    async def launch_kernel(self, cmd, **kwargs):
        km = self.parent
        box = self._box()
        conn_fd = os.open(km.connection_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        filt = box.seccomp_fd()
        try:
            inner = [INNER_CONNECTION if a == km.connection_file else a for a in cmd]
            argv = box.argv(inner, data_files=[(conn_fd, INNER_CONNECTION)], kernel=True, seccomp_fd=filt)
            kwargs["pass_fds"] = (tuple(s.fileno() for s in self._listeners.values()) + (conn_fd,)
                                  + ((filt,) if filt is not None else ()))
            log = box.open_log(os.path.basename(km.ip) + ".log")
            kwargs["stdout"] = kwargs["stderr"] = log
            try:
                info = await super().launch_kernel(argv, **kwargs)
            finally:
                os.close(log)
            box.add_kernel(self.process)
        finally:
            os.close(conn_fd)
            if filt is not None:
                os.close(filt)
            self._close_listeners()
        return info

    def _close_listeners(self):
        for s in getattr(self, "_listeners", {}).values():
            s.close()
        self._listeners = {}

    async def send_signal(self, signum: int) -> None:
        """SIGINT (an interrupt) goes to every process of the sandbox (the outer bwrap is not one of
        them); other signals to the sandbox's outer bwrap, whose PID namespace dies with it."""
        import psutil

        if self.process and signum == signal.SIGINT:
            try:
                inside = psutil.Process(self.process.pid).children(recursive=True)
            except psutil.Error:
                inside = []
            uid = self._box().uid
            for p in inside:
                try:
                    if uid is None or p.uids().real == uid:
                        p.send_signal(signum)
                except psutil.Error:
                    pass
            return
        await super().send_signal(signum)

    def strays(self) -> list:
        """Processes in this kernel's sandbox other than the kernel (what cells left behind): every
        descendant of the sandbox's init but its oldest child, the kernel (started before any student code)."""
        import psutil

        try:
            init = psutil.Process(self.process.pid).children()
        except (psutil.Error, AttributeError):
            return []
        if not init:
            return []
        inside = init[0].children(recursive=True)
        if not inside:
            return []
        kernel = min(inside, key=lambda p: (p.create_time(), p.pid) if p.is_running() else (float("inf"), 0))
        return [p for p in inside if p.pid != kernel.pid and not _dead(p)]

    async def cleanup(self, restart: bool = False) -> None:
        self._close_listeners()
        await super().cleanup(restart)


def _dead(p) -> bool:
    """A real zombie (nothing left to kill); a zombie leader whose other threads run is alive."""
    import psutil

    try:
        return p.status() == psutil.STATUS_ZOMBIE and p.num_threads() <= 1
    except psutil.Error:
        return True


def write_kernelspec(box) -> str:
    """The box's kernelspec folder (root-owned); returns the folder to give ``KernelSpecManager``."""
    kernels = os.path.join(str(box.base), "kernels")
    d = os.path.join(kernels, SPEC_NAME)
    if not os.path.isdir(d):
        os.mkdir(d, 0o700)
        spec = {"argv": [sys.executable, "-I", KERNEL_BOOT, "-f", "{connection_file}"],
                "display_name": "Python 3 (cnn-course sandbox)", "language": "python",
                "interrupt_mode": "signal", "env": {},
                "metadata": {"kernel_provisioner": {"provisioner_name": "cnn-course-sandbox",
                                                    "config": {"box_id": box.id}}}}
        with open(os.path.join(d, "kernel.json"), "x") as fh:
            json.dump(spec, fh, indent=1)
    return kernels


def box_kernel_manager(box, name: str) -> CappedKernelManager:
    ksm = KernelSpecManager(kernel_dirs=[write_kernelspec(box)])
    return CappedKernelManager(kernel_name=SPEC_NAME, kernel_spec_manager=ksm, transport="ipc",
                               ip=str(box.run / name), connection_file=str(box.run / f"{name}.json"))
