"""Named points where a test can SIGKILL the current process.

Crash-safety claims ("a killed register leaves no visible version", "a killed reindex leaves the alias
on the old collection") are only worth something if a real kill at each step is tested. Setting
``CLICKTUNE_CRASH_AT=<name>`` (comma-separated for several) makes the process kill itself with SIGKILL
the first time it reaches that point, which is indistinguishable from the OOM killer or a power cut as
far as files and Qdrant are concerned. Unset, a crash point is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

from clicktune.adapters.errors import ClicktuneError

ENV_VAR = "CLICKTUNE_CRASH_AT"
FAIL_ENV_VAR = "CLICKTUNE_FAIL_AT"


class InjectedFailure(ClicktuneError):
    """Raised by :func:`fail_point` when a test asks a step to fail."""


def crash_point(name: str) -> None:
    """Die here, uncleanly, if the environment asks for it."""
    wanted = os.environ.get(ENV_VAR)
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)


def fail_point(name: str) -> None:
    """Raise :class:`InjectedFailure` here if ``CLICKTUNE_FAIL_AT`` names this step.

    The clean-failure twin of :func:`crash_point`: it checks that every step's error path leaves
    the live system as it was and releases the lock.
    """
    wanted = os.environ.get(FAIL_ENV_VAR)
    if wanted and name in wanted.split(","):
        raise InjectedFailure(f"failure injected at step {name!r} ({FAIL_ENV_VAR})")
