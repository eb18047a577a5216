"""The grading sandbox: where a student's code runs, and what it can reach.

Every piece of student code that the grader runs (the notebook's kernel, and the out-of-kernel
check of :mod:`helpers.instructor.outofkernel`) is started through
:mod:`helpers.instructor.sandbox_launch` with a :class:`Box`: a scratch folder of its own (its home
and working directory, holding a copy of the submission's extra files), a run folder (the
kernel's connection file and ``ipc`` sockets), a new root file system that shows only what a
kernel needs, no network, resource limits, and, when the grader is root, an unprivileged user.

Users. A process limit (``RLIMIT_NPROC``) counts every process of a user, and processes of one
user can signal each other. So each grading worker slot ``N`` has its own system user,
``cnngraderN`` (created with ``useradd --system`` the first time; see :func:`ensure_users`): a
fork bomb in one submission cannot starve or kill the kernel of a submission graded beside it,
and after each cell and each submission every process of that user but the kernel is killed.
A slot is locked (``flock`` on ``<tmp>/cnn-course-sandbox-cnngraderN.lock``) by the worker that
uses it, so two grading runs on one machine never share a user (:func:`acquire_slot`).

Files root touches. The per-submission folder ``<tmp>/cnnsb-<slot>-XXXX`` is root's (``0711``);
``home/`` is the sandbox user's; ``run/`` (connection file, logs, ``ipc`` sockets) is root's
except while a kernel starts, when no other process of the sandbox user is alive. The launcher
opens logs and hands over the connection file without following symlinks. Files of a submission
are copied into ``home/`` only when they are regular files (never a symlink).

When the grader is not root there is no other user to switch to. The launcher then tries an
unprivileged user namespace (which gives the same private file system and no network) and
applies the resource limits; :func:`probe` says what was and was not applied, and
:class:`SandboxReport` carries that into the autograde outcomes.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

USER_PREFIX = "cnngrader"
GiB = 2 ** 30
MiB = 2 ** 20
_ID_ENV = ("NBGRADER_EXECUTION", "CNN_COURSE_DATA")


class SandboxError(Exception):
    """The sandbox cannot be set up as asked."""


@dataclass
class Limits:
    address_space: int = 2 * GiB      # RLIMIT_AS, bytes: a memory bomb gets MemoryError
    cpu_seconds: int = 600            # RLIMIT_CPU, per process
    processes: int = 96               # RLIMIT_NPROC, threads included (a kernel uses about 15)
    file_size: int = 64 * MiB         # RLIMIT_FSIZE, bytes per file written
    open_files: int = 256             # RLIMIT_NOFILE

    def rlimits(self) -> dict:
        return {"AS": self.address_space, "CPU": self.cpu_seconds, "NPROC": self.processes,
                "FSIZE": self.file_size, "NOFILE": self.open_files, "CORE": 0}


@dataclass
class Policy:
    """What the sandbox enforces. Serialisable (``to_dict``/``from_dict``) so that it can travel in a
    traitlets config to nbgrader's preprocessors."""

    enabled: bool = True
    slot: int = 0                      # grading worker slot: selects the sandbox user
    user: str | None = None            # default: f"cnngrader{slot}" as root; ignored otherwise
    limits: Limits = field(default_factory=Limits)
    isolate_network: bool = True
    private_fs: bool = True
    strict: bool = False               # a measure that cannot be applied is an error
    base_dir: str | None = None        # where the per-submission folders go (default: the temp dir)
    expose: tuple = ()                 # extra read-only paths the kernel needs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["expose"] = list(self.expose)
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> "Policy":
        d = dict(d or {})
        limits = Limits(**d.pop("limits", {}) or {})
        d["expose"] = tuple(d.get("expose", ()))
        return cls(limits=limits, **d)

    @property
    def user_name(self) -> str:
        return self.user or f"{USER_PREFIX}{self.slot}"


@dataclass
class SandboxReport:
    applied: list = field(default_factory=list)
    missing: list = field(default_factory=list)

    def summary(self) -> str:
        text = "sandbox: " + (", ".join(self.applied) or "nothing applied")
        if self.missing:
            text += "; NOT applied: " + "; ".join(self.missing)
        return text


# --------------------------------------------------------------------------- users
def is_root() -> bool:
    return os.geteuid() == 0


def ensure_user(name: str, attempts: int = 5) -> tuple[int, int]:
    """The (uid, gid) of the system user ``name``, created (root only) if it does not exist."""
    for i in range(attempts):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
        if not is_root():
            raise SandboxError(f"no user {name!r}, and only root can create it")
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        if not os.path.exists(useradd):
            raise SandboxError("useradd is missing: install the 'passwd' package, or create the sandbox users")
        res = subprocess.run([useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
                              "--shell", "/usr/sbin/nologin", "--user-group", name],
                             capture_output=True, text=True)
        if res.returncode not in (0, 9):   # 9: the name exists (created concurrently)
            if i == attempts - 1:
                raise SandboxError(f"useradd {name} failed: {res.stderr.strip()}")
            time.sleep(0.2 * (i + 1))      # /etc/passwd is locked by another useradd
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def ensure_users(n: int, prefix: str = USER_PREFIX) -> list[tuple[int, int]]:
    """Create the sandbox users of ``n`` worker slots (root only; a no-op otherwise)."""
    if not is_root():
        return []
    return [ensure_user(f"{prefix}{i}") for i in range(n)]


_HELD: dict[int, list] = {}   # slot -> [fd, count]: the slot locks this process holds


def acquire_slot(preferred: int = 0, max_slots: int = 64) -> tuple[int, int | None]:
    """Lock a sandbox slot (and so its user, ``cnngrader<slot>``) for this process: ``(slot, token)``.

    Two grading runs on one machine (two instructors, a test run beside the demo) must never share
    a sandbox user: each kills every process of its user after each cell. The lock is an ``flock`` on
    a file in the temp directory, so it goes when the process exits. A process that already holds
    ``preferred`` gets it again (a worker holds its slot for its whole life; its boxes reuse it).
    Release with :func:`release_slot` (``token``). Only root has per-slot users; otherwise this
    returns ``(preferred, None)``.
    """
    import fcntl

    if not is_root():
        return preferred, None
    if preferred in _HELD:
        _HELD[preferred][1] += 1
        return preferred, preferred
    for i in [preferred] + [j for j in range(max_slots) if j != preferred]:
        if i in _HELD:
            continue
        fd = os.open(os.path.join(tempfile.gettempdir(), f"cnn-course-sandbox-{USER_PREFIX}{i}.lock"),
                     os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _HELD[i] = [fd, 1]
        return i, i
    raise SandboxError(f"all {max_slots} sandbox slots are in use by other grading runs")


def release_slot(token: int | None) -> None:
    held = _HELD.get(token) if token is not None else None
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[token]
        try:
            os.close(held[0])
        except OSError:
            pass


def set_parent_death_signal() -> None:
    """Die (SIGKILL) when the parent process dies (Linux; a no-op elsewhere)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except Exception:
        pass


def pids_of(uid: int | None = None, pgid: int | None = None) -> list[int]:
    """Live processes (zombies excluded) whose real uid is ``uid`` (or whose process group is ``pgid``)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                data = fh.read()
            fields = data[data.rfind(b")") + 2:].split()
            if fields[0] in (b"Z", b"X"):
                continue
            if uid is not None:   # (not the owner of /proc/PID: a process can make that root)
                with open(f"/proc/{pid}/status", "rb") as fh:
                    for line in fh:
                        if line.startswith(b"Uid:"):
                            if int(line.split()[1]) == uid:
                                found.append(pid)
                            break
            elif pgid is not None and int(fields[2]) == pgid:
                found.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return found


def kill_processes(uid: int | None = None, pgid: int | None = None, keep=(), rounds: int = 60) -> int:
    """SIGKILL every process of ``uid`` (or of process group ``pgid``) except ``keep``; wait for them.

    Returns how many were killed. Repeats until none is left, so that processes forked meanwhile
    (a fork bomb) go too.
    """
    import signal

    keep = set(keep)
    killed = set()
    for _ in range(rounds):
        pids = [p for p in pids_of(uid=uid, pgid=pgid) if p not in keep and p != os.getpid()]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    # killed processes linger as zombies until their parent (or init) reaps them, and zombies still
    # count against the user's process limit: wait (briefly) until they are gone
    end = time.monotonic() + 3
    while killed and time.monotonic() < end and any(os.path.exists(f"/proc/{p}") for p in killed):
        time.sleep(0.02)
    return len(killed)


# --------------------------------------------------------------------------- what a kernel needs
def _package_paths() -> list[str]:
    import helpers
    from helpers import data

    paths = [os.path.dirname(os.path.realpath(helpers.__file__)), os.path.realpath(data.DATA_DIR)]
    return paths


def default_exposed(extra=()) -> list[str]:
    """Read-only paths inside the sandbox: the system, the Python installation, the venv, helpers, data."""
    paths = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        paths.append(os.path.realpath(p))
    paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    for p in sys.path:
        if p and ("site-packages" in p or "dist-packages" in p) and os.path.isdir(p):
            paths.append(os.path.realpath(p))
    paths += _package_paths()
    paths += [os.path.realpath(p) for p in extra]
    out = []
    for p in sorted(set(x for x in paths if os.path.lexists(x)), key=len):
        if os.path.islink(p) or not any(p.startswith(q.rstrip("/") + "/") for q in out if not os.path.islink(q)):
            out.append(p)
    return out


def check_exposure(exposed: list[str], secret: list[str]) -> None:
    """Refuse a policy that would show a secret path (course root, sources, gradebook) inside the sandbox."""
    for s in secret:
        if not s:
            continue
        rs = os.path.realpath(s)
        for e in exposed:
            re_ = os.path.realpath(e)
            if rs == re_ or rs.startswith(re_.rstrip("/") + "/"):
                raise SandboxError(f"the sandbox would show {s} (inside the exposed {e}); move the course "
                                   f"directory out of the Python installation and the helpers package")


_MPL_TEMPLATE: list = []


def _matplotlib_cache() -> str | None:
    """A matplotlib font cache, built once per machine and matplotlib version (building it in every
    fresh home costs seconds) and copied into each scratch folder."""
    if _MPL_TEMPLATE:
        return _MPL_TEMPLATE[0]
    try:
        import matplotlib

        version = matplotlib.__version__
    except Exception:
        _MPL_TEMPLATE.append(None)
        return None
    final = os.path.join(tempfile.gettempdir(), f"cnn-course-mpl-cache-{version}-{os.getuid()}")
    if not any(Path(final).glob("fontlist*.json")):
        build = tempfile.mkdtemp(prefix="cnnsb-mpl-")
        try:
            subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], cwd=build, timeout=120,
                           env={**_base_env(), "MPLCONFIGDIR": build, "HOME": build}, capture_output=True)
            if any(Path(build).glob("fontlist*.json")):
                try:
                    os.rename(build, final)           # atomic; another process may have won the race
                except OSError:
                    pass
        except Exception:
            pass
        finally:
            shutil.rmtree(build, ignore_errors=True)
    _MPL_TEMPLATE.append(final if any(Path(final).glob("fontlist*.json")) else None)
    return _MPL_TEMPLATE[0]


def remove_stale_boxes(slot: int) -> None:
    """Folders of boxes of ``slot`` left by a grading worker that was killed (call with the slot locked)."""
    import glob

    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"cnnsb-{slot}-*")):
        shutil.rmtree(path, ignore_errors=True)


def _base_env() -> dict:
    bindir = os.path.dirname(sys.executable)
    env = {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}
    for k in _ID_ENV:
        if k in os.environ:
            env[k] = os.environ[k]
    return env


# --------------------------------------------------------------------------- one submission's box
class Box:
    """The sandbox of one submission: its folders, its user, and the command line that starts code in it."""

    def __init__(self, policy: Policy, label: str = "sandbox", files_from=(), secret=()):
        self.policy = policy
        self.label = label
        self.root_mode = is_root() and policy.enabled
        self._slot_token = None
        if self.root_mode:
            if policy.user is None:   # the slot's own user, locked against other grading runs
                slot, self._slot_token = acquire_slot(policy.slot)
                self.policy = policy = dataclasses.replace(policy, slot=slot)
            self.uid, self.gid = ensure_user(policy.user_name)
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        base_dir = policy.base_dir or tempfile.gettempdir()
        self.base = Path(tempfile.mkdtemp(prefix=f"cnnsb-{policy.slot}-", dir=base_dir))
        os.chmod(self.base, 0o711)
        self.home = self.base / "home"
        self.run = self.base / "run"
        self.new_root = self.base / "root"
        for d in (self.home, self.run, self.new_root):
            d.mkdir(mode=0o700)
        (self.home / "tmp").mkdir(mode=0o700)
        self.exposed = default_exposed(policy.expose)
        check_exposure(self.exposed, list(secret))
        for src in files_from:
            self._copy_files(Path(src))
        mpl = _matplotlib_cache()
        if mpl:
            dest = self.home / ".config" / "matplotlib"
            dest.mkdir(parents=True, exist_ok=True)
            for f in Path(mpl).glob("fontlist*.json"):
                shutil.copy(f, dest / f.name)
        if self.root_mode:
            for dirpath, dirnames, filenames in os.walk(self.home):
                os.chown(dirpath, self.uid, self.gid)
                for name in filenames:
                    os.lchown(os.path.join(dirpath, name), self.uid, self.gid)
            self.seal_run()
        self._n = 0

    # the submission's own files (data it loads by relative path): regular files only, never a
    # symlink (root would otherwise copy whatever it points at into the sandbox)
    def _copy_files(self, src: Path, limit: int = 50 * MiB) -> None:
        if not src.is_dir():
            return
        total = 0
        for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and not os.path.islink(os.path.join(dirpath, d))]
            rel = os.path.relpath(dirpath, src)
            for name in filenames:
                if name.endswith(".ipynb") or name.startswith("."):
                    continue
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or total + st.st_size > limit:
                    continue
                total += st.st_size
                dest = self.home / rel / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest, follow_symlinks=False)

    def env(self) -> dict:
        env = _base_env()
        env.update({"HOME": str(self.home), "TMPDIR": str(self.home / "tmp"), "USER": self.policy.user_name,
                    "MPLCONFIGDIR": str(self.home / ".config" / "matplotlib"),
                    "IPYTHONDIR": str(self.home / ".ipython"), "JUPYTER_RUNTIME_DIR": str(self.run),
                    "JUPYTER_CONFIG_DIR": str(self.home / ".jupyter"),
                    "JUPYTER_DATA_DIR": str(self.home / ".local" / "share" / "jupyter"),
                    "JUPYTER_PLATFORM_DIRS": "1"})
        return env

    def spec(self, log: str | None = None, keep_fds=(), env: dict | None = None, start_dir: str | None = None) -> dict:
        p = self.policy
        limits = p.limits.rlimits()
        spec = {"mode": "root" if self.root_mode else "userns", "strict": p.strict,
                "isolate_network": p.isolate_network, "limits": limits, "env": env or self.env(),
                "home": str(self.home), "start_dir": start_dir, "keep_fds": list(keep_fds), "nice": 5,
                "log": str(self.run / log) if log else None}
        if p.private_fs:
            spec.update({"new_root": str(self.new_root), "expose_ro": self.exposed,
                         "expose_rw": [str(self.home), str(self.run)]})
        if self.root_mode:
            spec.update({"uid": self.uid, "gid": self.gid, "user": p.user_name})
        return spec

    def argv(self, cmd: list[str], log: str | None = None, keep_fds=(), env: dict | None = None,
             start_dir: str | None = None) -> list[str]:
        """The command line that runs ``cmd`` inside this box."""
        if not self.policy.enabled:
            return list(cmd)
        blob = base64.b64encode(json.dumps(self.spec(log, keep_fds, env, start_dir)).encode()).decode()
        return [sys.executable, "-I", "-m", "helpers.instructor.sandbox_launch", blob, "--", *cmd]

    def kernel_argv(self, log: str) -> list[str]:
        """An ipykernel in this box (``{connection_file}`` is filled in by jupyter_client)."""
        home = str(self.home)
        return self.argv([sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                          f"--IPKernelApp.exec_lines=__import__('os').chdir({home!r})"], log=log, start_dir="/")

    # The run folder holds what root writes or follows: the connection file (written by
    # jupyter_client), the logs, the ipc sockets the grader connects (and reconnects) to. Student
    # code must never be able to plant a symlink there. So the folder is root's, except while a
    # kernel starts and creates its sockets; then no other process of the sandbox user is alive
    # (they are killed first), and the kernel runs only its own start-up code, not a student's.
    def unseal_run(self) -> None:
        if self.root_mode:
            self.kill_strays()
            os.chown(self.run, self.uid, self.gid)
            os.chmod(self.run, 0o700)

    def seal_run(self) -> None:
        if self.root_mode:
            os.chown(self.run, 0, 0)
            os.chmod(self.run, 0o711)

    def next_name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}{self._n}"

    def kill_strays(self, keep=(), pgid: int | None = None) -> int:
        """Kill every process of this box's user (root) or of process group ``pgid`` but ``keep``."""
        if self.root_mode:
            return kill_processes(uid=self.uid, keep=keep)
        if pgid is not None:
            return kill_processes(pgid=pgid, keep=keep)
        return 0

    def log_tail(self, name: str, lines: int = 5) -> str:
        try:
            text = (self.run / name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def cleanup(self) -> None:
        self.kill_strays()
        shutil.rmtree(self.base, ignore_errors=True)
        release_slot(self._slot_token)
        self._slot_token = None


# --------------------------------------------------------------------------- probe
_PROBE = r"""
import json, os, socket, sys
out = {"uid": os.getuid(), "applied": os.environ.get("CNN_SANDBOX_APPLIED", ""),
       "missing": os.environ.get("CNN_SANDBOX_MISSING", ""), "cwd": os.getcwd()}
try:
    import numpy, h5py, helpers
    from helpers.data import REFERENCE_FILE
    with open(REFERENCE_FILE, "rb") as fh:
        fh.read(8)
    out["imports"] = "ok"
except Exception as exc:
    out["imports"] = f"{type(exc).__name__}: {exc}"
try:
    out["interfaces"] = [name for _, name in socket.if_nameindex()]
except OSError:
    out["interfaces"] = []
print(json.dumps(out))
"""


def probe(policy: Policy, secret=()) -> tuple[SandboxReport, dict]:
    """Start a short Python program in a box of ``policy``: what is applied, and does a kernel's
    Python (numpy, h5py, helpers, the reference data) work inside? Raises :class:`SandboxError`
    when it does not."""
    box = Box(policy, "probe", secret=secret)
    try:
        log = box.next_name("probe") + ".log"
        out_path = box.home / "probe.json"
        cmd = [sys.executable, "-I", "-c", _PROBE.replace("print(json.dumps(out))",
                                                         f"open({str(out_path)!r}, 'w').write(json.dumps(out))")]
        res = subprocess.run(box.argv(cmd, log=log), capture_output=True, text=True, timeout=120,
                             cwd=str(box.base))
        try:
            info = json.loads(out_path.read_text())
        except (OSError, ValueError):
            raise SandboxError(f"the sandbox probe failed (exit {res.returncode}): "
                               f"{(res.stderr.strip() or box.log_tail(log) or 'no output')[-600:]}") from None
        if info.get("imports") != "ok":
            raise SandboxError(f"inside the sandbox, Python cannot import the course's packages: {info['imports']}; "
                               f"{box.log_tail(log)}")
        report = SandboxReport([a for a in info["applied"].split(",") if a],
                               [m for m in info["missing"].split("; ") if m])
        if not policy.enabled:
            report = SandboxReport([], ["sandbox disabled: student code runs as the grading user, with its "
                                        "access, network and no limits"])
        return report, info
    finally:
        box.cleanup()
