"""The grading sandbox: every process of student code runs in a bubblewrap sandbox of a :class:`Box`.

See :mod:`.box` (layout, lifetime), :mod:`.bwrap` (namespaces, read-only file system, user),
:mod:`.scratch` (size- and inode-limited tmpfs), :mod:`.cgroups` (memory and process count of a
box), :mod:`.provisioner` (kernels on root-made sockets), :mod:`.users` (slot users and locks) and
:mod:`.probe`.
"""
from .box import Box
from .files import stage_files
from .nullbox import NullBox
from .policy import GiB, MiB, Policy, SandboxError, SandboxReport
from .probe import probe
from .users import acquire_slot, ensure_users, release_slot, remove_stale_boxes

__all__ = ["Box", "NullBox", "Policy", "SandboxError", "SandboxReport", "acquire_slot", "ensure_users", "probe",
           "release_slot", "remove_stale_boxes", "stage_files", "GiB", "MiB"]
