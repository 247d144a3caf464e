"""Who holds a lease, written so that a process on the same host can tell that its holder died.

An owner reads ``host:pid:nonce:machine``. ``machine`` is a digest of the kernel's boot id and the
holder's PID namespace: two processes with the same digest see the same PIDs, so a PID that no
longer exists there is a dead holder, whose lease may be taken over at once instead of after it runs
out (a SIGKILLed command). Anything else (another host, another container sharing the hostname, a
platform without ``/proc``, an owner written by an older release) is never taken over: its lease
runs out by itself.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from functools import cache
from pathlib import Path

_UNKNOWN = "-"


@cache
def _machine() -> str:
    """The digest of boot id and PID namespace, or ``-`` where either cannot be read."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return _UNKNOWN
    return hashlib.blake2b(f"{boot_id}/{pid_namespace}".encode(), digest_size=6).hexdigest()


def lock_owner() -> str:
    """A new owner name for this process: ``host:pid:nonce:machine``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:{_machine()}"


def owner_is_gone(owner: str) -> bool:
    """True only when ``owner`` is a process of this machine and PID namespace that no longer runs."""
    parts = owner.rsplit(":", 3)
    if len(parts) != 4 or parts[3] == _UNKNOWN or parts[3] != _machine() or parts[0] != socket.gethostname():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
