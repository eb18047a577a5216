"""``probe(policy)``: run a tiny program in a :class:`Box` and say, in one line, what is applied."""
from __future__ import annotations

import json
import subprocess
import sys

from . import seccomp
from .policy import Policy, SandboxError, SandboxReport

_PROBE = r"""
import json, os, socket
st = os.statvfs(".")
out = {"uid": os.getuid(), "cwd": os.getcwd(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
       "scratch_bytes": st.f_blocks * st.f_frsize, "scratch_inodes": st.f_files,
       "interfaces": [n for _, n in socket.if_nameindex()], "root_listing": sorted(os.listdir("/"))}
try:
    import numpy, helpers
    from helpers.data import REFERENCE_FILE
    with open(REFERENCE_FILE, "rb") as fh:
        fh.read(8)
    out["imports"] = "ok"
except Exception as exc:
    out["imports"] = f"{type(exc).__name__}: {exc}"
try:
    open("/usr/cnn-probe", "w")
    out["usr_writable"] = True
except OSError:
    out["usr_writable"] = False
print(json.dumps(out))
"""


def probe(policy: Policy | None = None) -> SandboxReport:
    """What a box of ``policy`` applies; :class:`SandboxError` when code cannot run in it."""
    from .box import Box

    policy = policy or Policy()
    if not policy.enabled:
        return SandboxReport([], ["sandbox disabled (--no-sandbox): student code runs as the grading user, "
                                  "with its access, network and no limits"])
    with Box(policy, "probe") as box:
        proc = box.spawn([sys.executable, "-I", "-c", _PROBE], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=120)
        try:
            info = json.loads(out)
        except ValueError:
            raise SandboxError(f"the sandbox probe failed (exit {proc.returncode}): "
                               f"{err.decode(errors='replace').strip()[-600:] or 'no output'}") from None
        if info["imports"] != "ok":
            raise SandboxError(f"inside the sandbox, Python cannot import the course's packages: {info['imports']}")
        applied, missing = ["bubblewrap"], []
        if box.root_mode and info["uid"] == box.uid:
            applied.append(f"user {policy.user_name} (uid {box.uid})")
        else:
            missing.append("separate user (not root: code runs as the grading user in a user namespace)")
        (applied if len(info["pids"]) <= 3 else missing).append("pidns")
        if policy.isolate_network:
            (applied if info["interfaces"] in ([], ["lo"]) else missing).append("netns (no network)")
        (missing if info["usr_writable"] else applied).append("read-only fs")
        if box.root_mode:
            applied.append(f"scratch tmpfs {info['scratch_bytes'] // 2 ** 20} MiB/{info['scratch_inodes']} inodes")
        else:
            missing.append("scratch size and inode limits (not root: no tmpfs mount)")
        if box.cg is not None and box.cg.dirs:
            applied.append(box.cg.describe(policy.memory_bytes, policy.max_processes))
        else:
            missing.append((box.cg.why if box.cg else "cgroups (not root)") + ": per-process rlimits only")
        if policy.seccomp and seccomp.filter_path()[0]:
            applied.append(f"seccomp (denies {len(seccomp.DENIED) + 2} calls: keyrings, namespaces, ptrace, ...)")
        else:
            missing.append("seccomp filter: " + (seccomp.filter_path()[1] if policy.seccomp else "off in the policy"))
        applied.append("rlimits " + ",".join(f"{k.upper()}" for k in policy.rlimits()))
        return SandboxReport(applied, missing, info)
