"""Progress of a copy counted in points: a tqdm bar where a person watches, INFO lines elsewhere.

The project's rule (bars on a TTY; cron, workers, CI and ``| tee`` get INFO logs instead), in one place
for the copies that count their own pages: adopting a collection, moving a home to the edge engine.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

from tqdm.auto import tqdm


class PointsProgress:
    """``with PointsProgress(label, total, show_bar=..., log=...) as progress: progress.update(n)``."""

    def __init__(self, label: str, total: int, *, show_bar: bool, log: logging.Logger, detail: str = "",
                 unit: str = "point", every: float = 15.0) -> None:
        self.label, self.total, self.log, self.every = label, total, log, every
        self.done = 0
        self._bar = tqdm(total=total, desc=label, unit=unit, disable=not show_bar)
        self._show_bar = show_bar
        self._last = time.monotonic()
        if not show_bar:
            log.info("%s: copying %d points%s", label, total, detail)

    def update(self, count: int) -> None:
        self.done += count
        self._bar.update(count)
        if not self._show_bar and time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.log.info("%s: %d of %d points", self.label, self.done, self.total)

    def __enter__(self) -> PointsProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._bar.close()
