"""Progress of a long copy as INFO log lines, for when no TTY shows the progress bar.

The project's rule: progress bars on a TTY, INFO logs of progress without one (cron, a worker, CI,
``| tee``). The reindexer's bar is off without a TTY, so ``clicktune reindex`` used to be silent
for minutes. This logs the start, then every ``every`` seconds how many points the collection
being built holds, read from Qdrant by a daemon thread (the embedded client takes calls one at a
time, so the count waits for the current batch), so the reindexer itself needs no hook.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clicktune.adapters.qdrant import VersionIndex

log = logging.getLogger("clicktune.scheduler.reindex")


class CopyProgress:
    """``with CopyProgress(index, source, target):`` logs version ``target``'s document count against ``source``'s."""

    def __init__(self, index: VersionIndex, source: str, target: str, *, every: float = 15.0) -> None:
        self.index, self.source, self.target, self.every = index, source, target, every
        self._names = f"{index.collections.name_for(source)} -> {index.collections.name_for(target)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self.total = 0

    def __enter__(self) -> CopyProgress:
        self.total = self._count(self.source) or 0
        self._started = time.monotonic()
        log.info("reindex %s: copying %d points", self._names, self.total)
        self._thread = threading.Thread(target=self._report, name="clicktune-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _report(self) -> None:
        while not self._stop.wait(self.every):
            copied = self._count(self.target)
            if copied is None:
                continue  # not created yet
            share = f" ({100 * copied / self.total:.0f}%)" if self.total else ""
            log.info("reindex %s: %d of %d points%s after %.0fs", self._names, copied, self.total, share,
                     time.monotonic() - self._started)

    def _count(self, version: str) -> int | None:
        """Approximate on a server (cheap), exact in embedded mode; None while the collection is absent
        or when Qdrant does not answer (progress is best effort: the reindex reports its own errors)."""
        try:
            if not self.index.exists(version):
                return None
            return self.index.count(version, exact=False)
        except Exception as exc:  # noqa: BLE001 - a progress line must never fail the reindex
            log.debug("progress count of %s failed: %s", version, exc)
            return None
