"""``clicktune history``: what happened to the alias, oldest first, readable at 80 columns.

The timeline is the feedback database's run history (``clicktune_runs``): every tick of the loop
that did something (a phase opened, a promotion, a drop, an offline rejection, a failure) and every
change an operator made by hand, which the commands record there as they make it (:class:`ByHand`:
a rollback, a re-index, a phase promoted or dropped by hand). The registry's decisions say what
became of each version, but not that the alias went back to an earlier one, nor who moved it.

Each entry is a head line (when, what, which versions) and its reason wrapped under it, so no line
is wider than 80 columns, whatever the reason's length.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.text import counted

log = logging.getLogger(__name__)

WIDTH = 80


@dataclass(frozen=True)
class ByHand:
    """A change of the alias made by an operator's command, recorded as a run so ``history`` lists it.

    ``champion`` is the version live before the change, ``candidate`` the version it concerns (the
    one rolled back to, re-indexed to, or whose phase ended).
    """

    status: Literal["rolled_back", "reindexed", "promoted", "dropped"]
    reason: str
    alias: str
    champion: str | None
    candidate: str | None
    decision: dict[str, Any] | None = None
    by: str = "hand"
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def record(self, settings: ClicktuneSettings) -> None:
        """Append to the run history; a failure to record is a warning, the change itself is made."""
        from clicktune.adapters.clicklog import ClickLog

        try:
            log_ = ClickLog.from_settings(settings)
            try:
                log_.record_run(datetime.fromisoformat(self.started_at), asdict(self))
            finally:
                log_.close()
        except Exception as exc:  # noqa: BLE001 - the change is done; only its record is missing
            log.warning("%s done, but the run history could not record it (%s: %s)", self.status,
                        type(exc).__name__, exc)


@dataclass(frozen=True)
class HistoryEntry:
    """One row of ``clicktune_runs`` as ``history`` shows it."""

    at: datetime
    status: str
    reason: str
    champion: str | None
    candidate: str | None
    alias: str | None
    by_hand: bool
    pairs: int | None
    seconds: float | None

    @classmethod
    def from_run(cls, row: Mapping[str, Any]) -> HistoryEntry:
        outcome: Mapping[str, Any] = row.get("outcome") or {}
        steps = outcome.get("steps") or {}
        mining = outcome.get("mining") or {}
        return cls(
            at=row["started_at"], status=str(row["status"]), reason=str(outcome.get("reason") or ""),
            champion=outcome.get("champion"), candidate=outcome.get("candidate"), alias=outcome.get("alias"),
            by_hand=outcome.get("by") == "hand", pairs=mining.get("train_pairs"),
            seconds=round(sum(steps.values()), 1) if steps else None,
        )

    @property
    def versions(self) -> str:
        champion, candidate = self.champion or "-", self.candidate or "-"
        if self.status in ("rolled_back", "reindexed"):
            return f"{champion} -> {candidate}"
        if self.status in ("challenger", "promoted", "dropped", "rejected"):
            return f"{candidate} vs {champion}"
        return candidate if self.candidate else champion

    def lines(self, width: int = WIDTH) -> list[str]:
        head = f"{self.at:%Y-%m-%d %H:%M}  {self.status.replace('_', ' '):<11} {self.versions}"
        if self.by_hand:
            head += "  (by hand)"
        facts = [counted(self.pairs, "pair")] if self.pairs is not None else []
        if self.seconds:
            facts.append(f"{self.seconds:.0f}s")
        reason = self.reason + (f" [{', '.join(facts)}]" if facts else "")
        body = textwrap.wrap(" ".join(reason.split()), width=width, initial_indent="    ",
                             subsequent_indent="    ", break_long_words=True, break_on_hyphens=False)
        return [head if len(head) <= width else head[: width - 3] + "...", *body]


def history_entries(settings: ClicktuneSettings, *, limit: int) -> list[HistoryEntry]:
    """The alias's newest ``limit`` runs, oldest first; none when there is no feedback database yet."""
    from clicktune.scheduler.cli_status import require_setup

    if not require_setup(settings).feedback:
        return []
    from clicktune.adapters.clicklog import ClickLog

    feedback = ClickLog.from_settings(settings)
    try:
        rows = feedback.runs(limit=limit)
    finally:
        feedback.close()
    entries = [HistoryEntry.from_run(row) for row in reversed(rows)]
    return [e for e in entries if e.alias in (None, settings.collection_alias)]


def history_lines(settings: ClicktuneSettings, *, limit: int) -> Iterator[str]:
    entries = history_entries(settings, limit=limit)
    if not entries:
        yield f"no run recorded yet on alias {settings.collection_alias!r}"
        return
    for entry in entries:
        yield from entry.lines()
