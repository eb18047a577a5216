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

When the grader is not root there is no other user to switch to. The launcher then tries an
unprivileged user namespace (which gives the same private file system and no network) and
applies the resource limits; :func:`probe` says what was and was not applied, and
:class:`SandboxReport` carries that into the autograde outcomes.
"""
from __future__ import annotations

import base64
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


def pids_of(uid: int | None = None, pgid: int | None = None) -> list[int]:
    """Processes whose real uid is ``uid`` (or whose process group is ``pgid``)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if uid is not None:
                with open(f"/proc/{pid}/status", "rb") as fh:
                    for line in fh:
                        if line.startswith(b"Uid:"):
                            if int(line.split()[1]) == uid:
                                found.append(pid)
                            break
            elif pgid is not None:
                with open(f"/proc/{pid}/stat", "rb") as fh:
                    data = fh.read()
                fields = data[data.rfind(b")") + 2:].split()
                if int(fields[2]) == pgid:
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
    """A matplotlib font cache built once per grader process, copied into each scratch folder
    (building it in every fresh home costs seconds)."""
    if _MPL_TEMPLATE:
        return _MPL_TEMPLATE[0]
    path = tempfile.mkdtemp(prefix="cnnsb-mpl-")
    try:
        subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], cwd=path, timeout=120,
                       env={**_base_env(), "MPLCONFIGDIR": path, "HOME": path}, capture_output=True)
    except Exception:
        pass
    _MPL_TEMPLATE.append(path if any(Path(path).glob("fontlist*.json")) else None)
    return _MPL_TEMPLATE[0]


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
        base_dir = policy.base_dir or tempfile.gettempdir()
        self.base = Path(tempfile.mkdtemp(prefix="cnnsb-", dir=base_dir))
        os.chmod(self.base, 0o711)
        self.home = self.base / "home"
        self.run = self.base / "run"
        self.new_root = self.base / "root"
        for d in (self.home, self.run, self.new_root):
            d.mkdir(mode=0o700)
        (self.home / "tmp").mkdir(mode=0o700)
        self.root_mode = is_root() and policy.enabled
        if self.root_mode:
            self.uid, self.gid = ensure_user(policy.user_name)
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
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
            os.chown(self.run, self.uid, self.gid)
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

    def spec(self, log: str | None = None, keep_fds=(), env: dict | None = None) -> dict:
        p = self.policy
        limits = p.limits.rlimits()
        spec = {"mode": "root" if self.root_mode else "userns", "strict": p.strict,
                "isolate_network": p.isolate_network, "limits": limits, "env": env or self.env(),
                "home": str(self.home), "keep_fds": list(keep_fds), "nice": 5,
                "log": str(self.run / log) if log else None}
        if p.private_fs:
            spec.update({"new_root": str(self.new_root), "expose_ro": self.exposed,
                         "expose_rw": [str(self.home), str(self.run)]})
        if self.root_mode:
            spec.update({"uid": self.uid, "gid": self.gid, "user": p.user_name})
        return spec

    def argv(self, cmd: list[str], log: str | None = None, keep_fds=(), env: dict | None = None) -> list[str]:
        """The command line that runs ``cmd`` inside this box."""
        if not self.policy.enabled:
            return list(cmd)
        blob = base64.b64encode(json.dumps(self.spec(log, keep_fds, env)).encode()).decode()
        return [sys.executable, "-I", "-m", "helpers.instructor.sandbox_launch", blob, "--", *cmd]

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
