"""Start ipykernel inside the sandbox on the listening sockets root made: run by file path,
``python -I .../kernel_boot.py -f CONNECTION_FILE`` (standard library, zmq and ipykernel only;
never the ``helpers`` package).

``CNN_KERNEL_FDS`` = ``PORT:FD,...``: for each port of the connection file, the fd of a listening
``AF_UNIX`` socket that the grader (root) created, bound and passed in. ``zmq.Socket.bind`` is
wrapped so that binding ``ipc://<ip>-<PORT>`` adopts that fd (``ZMQ_USE_FD``) instead of creating
a socket file; libzmq then neither creates nor unlinks the path. This covers ipykernel's shell,
iopub, stdin and control sockets and the heartbeat thread. A bind of any other ipc address of the
connection file's prefix is refused.
"""
import json
import os
import sys


def main(argv):
    if len(argv) < 3 or argv[1] != "-f":
        sys.exit("usage: kernel_boot.py -f CONNECTION_FILE [ipykernel options]")
    fds = {}
    for item in os.environ.pop("CNN_KERNEL_FDS", "").split(","):
        if item:
            port, fd = item.split(":")
            fds[int(port)] = int(fd)
    with open(argv[2]) as fh:
        info = json.load(fh)
    if info.get("transport") != "ipc" or not fds:
        sys.exit("kernel_boot.py: expected an ipc connection file and CNN_KERNEL_FDS")
    prefix = f"ipc://{info['ip']}-"
    os.environ.pop("JPY_PARENT_PID", None)   # the grader is outside this PID namespace: no parent polling

    import zmq

    original = zmq.Socket.bind

    def bind(self, addr):
        if isinstance(addr, str) and addr.startswith(prefix):
            port = int(addr[len(prefix):])
            if port not in fds:
                raise zmq.ZMQError(zmq.EADDRINUSE, f"no listening socket for {addr}")
            self.setsockopt(zmq.USE_FD, fds.pop(port))
            try:
                return original(self, addr)
            finally:
                self.setsockopt(zmq.USE_FD, -1)
        return original(self, addr)

    zmq.Socket.bind = bind
    from ipykernel import kernelapp

    app = kernelapp.IPKernelApp.instance()
    app.initialize(["-f", argv[2], *argv[3:]])
    # only now, with the kernel's own modules loaded, may code import from the working directory
    # (a student's mylib.py), as in any Jupyter kernel; a student's zmq.py or ipykernel_launcher.py
    # could not take part in starting the kernel
    sys.path.insert(0, "")
    app.start()


if __name__ == "__main__":
    main(sys.argv)
