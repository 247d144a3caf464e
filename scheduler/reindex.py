"""Blue-green re-indexing: build the next version's collection beside the live one, verify, swap.

Order (docs/ARCHITECTURE.md invariant 3): model folder complete -> collection built and verified ->
alias swap (one request) -> CURRENT. A crash before the swap leaves the alias on the old, complete
collection (the next run deletes the orphan); one between the swap and CURRENT is finished by the
next run, which promotes the alias's version. Rollback (one step back) is here too.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from clicktune.adapters.crashpoints import crash_point, fail_point
from clicktune.adapters.models import VersionEncoder
from clicktune.adapters.qdrant import (
    CollectionVersion,
    IndexHandle,
    NothingToReindexError,
    VersionAlreadyLiveError,
    VersionKeptForRollbackError,
)
from clicktune.adapters.qdrant.coordination import ReindexSession
from clicktune.adapters.qdrant.index import Encode

if TYPE_CHECKING:
    from clicktune.scheduler.gate import OfflineCheckResult

log = logging.getLogger(__name__)


@dataclass
class ReindexReport:
    """What a reindex did, for logs, the CLI and benchmarks."""

    source: str
    target: str
    version: str
    points: int = 0
    replayed: int = 0
    removed_orphans: list[str] = field(default_factory=list)
    removed_old: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    swapped: bool = False
    #: Built, verified and kept for a challenger phase instead of swapped in.
    handed_off: bool = False
    #: What ``approve`` returned (the offline check's result), when one was asked.
    approval: OfflineCheckResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "approval": self.approval.as_dict() if self.approval is not None else None}


class BlueGreenReindexer:
    """Re-embeds every live document with a registered version into its own collection, and swaps.

    Orchestration only: the copy, replay and checks are ``handle.index``'s, in versions and caller ids.
    """

    def __init__(
        self,
        handle: IndexHandle,
        *,
        batch_size: int | None = None,
        verify_sample: int = 32,
        verify_queries: int = 5,
        show_progress: bool | None = None,
        seed: int = 0,
        guard: Callable[[], None] | None = None,
    ) -> None:
        #: Called right before the commit point (the swap, or the hand-off to a challenger phase), while
        #: writers wait: the lease's ``ensure_held``, so a run that lost its lease changes nothing.
        self.guard = guard
        self.handle = handle
        self.collections = handle.collections
        self.registry = handle.registry
        self.index = handle.index
        self.batch_size = batch_size or handle.settings.batch_size
        self.verify_sample = verify_sample
        self.verify_queries = verify_queries
        self.show_progress = handle.settings.show_progress() if show_progress is None else show_progress
        self._random = random.Random(seed)

    # Housekeeping ------------------------------------------------------------------------------
    def reconcile(self, protect: set[str] | None = None) -> list[str]:
        """Finish what a crashed run left and drop orphans (except the collections in ``protect``).

        The alias is the commit point of a swap and of a rollback, and writers have followed it since
        (they mirror into ``IndexHandle.rollback_version``), so CURRENT is brought to the alias, never
        the alias back to CURRENT: re-pointing the alias would serve a collection that missed every
        write acknowledged in between.
        """
        live = self.collections.live()
        if live is None:
            return []
        pointer = self.registry.pointer()
        if pointer is not None and pointer.version != live.version:
            if pointer.history and pointer.history[-1] == live.version:
                log.warning("alias serves %s but CURRENT is %s: finishing the rollback", live.version, pointer.version)
                self.registry.rollback()
            else:
                log.warning("alias serves %s but CURRENT is %s: finishing the promotion", live.version,
                            pointer.version)
                self.registry.promote(live.version)
        removed = []
        for orphan in self.collections.orphans(self.registry.previous()):
            if orphan in (protect or set()):
                continue
            self.collections.drop(orphan)
            removed.append(orphan)
        return removed

    # The run -----------------------------------------------------------------------------------
    def run(
        self,
        version: str,
        approve: Callable[[str, str], OfflineCheckResult] | None = None,
        hand_off: Callable[[CollectionVersion, CollectionVersion, OfflineCheckResult | None], None] | None = None,
        protect: set[str] | None = None,
    ) -> ReindexReport:
        """Build, verify and (if ``approve(live_version, version).passed``) swap to ``version``.

        ``approve`` (the offline check) scores the built collection before anything changes; its verdict
        is ``report.approval``; a refusal drops the new collection. ``hand_off(live, built, approval)``
        keeps it instead of swapping, called while writers wait right after the last catch-up (so no
        write falls between the copy and a challenger phase's own mirroring)."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        self.registry.get(version)  # VersionNotFoundError / InvalidVersionError for bad input
        removed_orphans = self.reconcile(protect)
        live = self.collections.live()
        if live is None:
            raise NothingToReindexError(
                f"alias {self.collections.alias!r} has no live collection yet: add documents before re-indexing"
            )
        if live.version == version:
            raise VersionAlreadyLiveError(f"{version} already serves {self.collections.alias!r} ({live.collection})")
        if version == self.handle.rollback_version(live.version):
            # Its collection is the one a rollback serves, and writers keep it complete; rebuilding it
            # would drop it first, and a crash mid-build would leave rollback a partial copy.
            raise VersionKeptForRollbackError(
                f"{version} is kept for rollback ({self.collections.name_for(version)}, complete and up to date): "
                "run `clicktune rollback` to serve it again, with no re-encoding"
            )
        if self.index.count(live.version) == 0:
            raise NothingToReindexError(f"{live.collection} is empty: nothing to re-index")

        encoder = self.handle.encoder(version)
        target = self.collections.name_for(version)
        if self.collections.exists(target):
            self.collections.drop(target)
        report = ReindexReport(source=live.collection, target=target, version=version, removed_orphans=removed_orphans)

        with self.handle.writes_tracked() as session:
            try:
                self._build_and_swap(session, live, target, encoder, report, timings, approve, hand_off)
            except Exception:
                # Nothing half-built may linger: the alias still serves the old collection, so the new
                # one is dropped (a SIGKILL skips this; the next run's reconcile removes it instead).
                if self.collections.live() != CollectionVersion(target, version) and self.collections.exists(target):
                    self.collections.drop(target)
                raise
        if not (report.swapped or report.handed_off):
            self.collections.drop(target)
            timings["total"] = time.perf_counter() - started
            report.seconds = timings
            return report
        self.registry.update_info(version, index_precision=encoder.precision)
        if report.handed_off:
            timings["total"] = time.perf_counter() - started
            report.seconds = timings
            return report
        crash_point("reindex.after_promote")
        report.removed_old = self.apply_retention(protect)
        timings["total"] = time.perf_counter() - started
        report.seconds = timings
        log.info("reindex %s -> %s: %d points, %d replayed, %.1fs", live.collection, target, report.points,
                 report.replayed, timings["total"])
        return report

    def _build_and_swap(
        self,
        session: ReindexSession,
        live: CollectionVersion,
        target: str,
        encoder: VersionEncoder,
        report: ReindexReport,
        timings: dict[str, float],
        approve: Callable[[str, str], OfflineCheckResult] | None,
        hand_off: Callable[[CollectionVersion, CollectionVersion, OfflineCheckResult | None], None] | None,
    ) -> None:
        version = report.version

        def encode(texts: list[str]) -> np.ndarray:
            return encoder.encode(texts, batch_size=self.batch_size)

        self.collections.create(version, encoder.dimension, bulk_load=True, copy_of=live.collection)
        crash_point("reindex.created")
        t = time.perf_counter()
        with tqdm(total=self.index.count(live.version), desc=f"reindex {live.collection} -> {target}", unit="doc",
                  disable=not self.show_progress) as bar:
            report.points = self.index.copy(live.version, version, encode, on_copied=bar.update)
        timings["copy"] = time.perf_counter() - t
        crash_point("reindex.copied")
        fail_point("reindex")
        t = time.perf_counter()
        report.replayed += self._replay(session, live.version, version, encode)
        timings["catch_up"] = time.perf_counter() - t
        self.collections.finish_bulk_load(target)
        crash_point("reindex.indexed")
        t = time.perf_counter()
        self.index.verify_search(version, encode, probes=self.verify_queries, rng=self._random)
        timings["verify_search"] = time.perf_counter() - t
        crash_point("reindex.verified")
        if approve is not None:
            t = time.perf_counter()
            report.approval = approve(live.version, version)
            timings["approve"] = time.perf_counter() - t
            if not report.approval.passed:
                return
        # Writers wait only for this block: the last replay, the copy checks, the swap and CURRENT.
        # CURRENT moves inside it too: a writer let in between would not yet see the old version as
        # the one to mirror into for rollback, and a rollback would lose its write.
        with self.handle.writers_paused():
            t = time.perf_counter()
            report.replayed += self._replay(session, live.version, version, encode)
            self.index.verify_copies(live.version, version, sample=self.verify_sample, rng=self._random)
            if self.guard is not None:
                self.guard()
            if hand_off is not None:
                hand_off(live, CollectionVersion(target, report.version), report.approval)
                report.handed_off = True
                timings["freeze"] = time.perf_counter() - t
                return
            crash_point("reindex.before_swap")
            fail_point("swap")
            self.collections.point_alias_at(target)
            report.swapped = True
            crash_point("reindex.after_swap")
            self.registry.promote(report.version)
            timings["freeze"] = time.perf_counter() - t

    def apply_retention(self, protect: set[str] | None = None) -> list[str]:
        """Retention after a swap (see :func:`apply_retention`); returns the collections it deleted."""
        return apply_retention(self.handle, protect=protect, guard=self.guard)[0]

    def _replay(self, session: ReindexSession, source: str, target: str, encode: Encode) -> int:
        """Bring the ids written since the copy began to their current live state in the target."""
        replayed = 0
        while ids := session.drain():
            replayed += self.index.replay(source, target, ids, encode)
        return replayed


def apply_retention(
    handle: IndexHandle, *, protect: set[str] | None = None, guard: Callable[[], None] | None = None
) -> tuple[list[str], list[str]]:
    """Delete what no rollback needs: old collections of the alias, then model folders beyond ``keep_versions``.

    Both keep one set of versions: the live one, the rollback target (CURRENT's previous) and those of
    the collections in ``protect`` (a running challenger's). The alias's other collections go; the
    registry then deletes its oldest folders beyond ``keep_versions``, never one of that set nor one
    that any collection on this Qdrant (of any alias) was built with. Call it after a promotion or a
    dropped/rejected candidate, with the lease held: with ``guard`` failing it deletes nothing (the
    lease's holder may be building a version right now) and returns empty lists.
    """
    from clicktune.adapters.errors import LeaseLostError

    if guard is not None:
        try:
            guard()
        except LeaseLostError as exc:
            log.warning("retention skipped: %s", exc)
            return [], []
    collections, registry = handle.collections, handle.registry
    live, previous = collections.live(), registry.previous()
    keep = set(protect or ())
    if previous is not None:
        keep.add(collections.name_for(previous))
    removed_collections = collections.apply_retention(keep)
    versions = collections.versions_in_use() | {v for v in map(collections.version_of, keep) if v}
    if live is not None:
        versions.add(live.version)
    removed_versions = registry.apply_retention(protect=versions)
    return removed_collections, removed_versions


def rollback(handle: IndexHandle, guard: Callable[[], None] | None = None) -> str:
    """Alias and CURRENT one step back, to the kept (complete) collection: no re-encoding. ``guard`` (the
    lease's ``ensure_held``) runs right before the alias moves, while writers wait."""
    from clicktune.adapters.errors import NothingToRollBackError

    live = handle.collections.require_live()
    previous, earlier = handle.rollback_version(live.version), handle.registry.previous()
    if previous is None and earlier not in (None, live.version):
        raise NothingToRollBackError(
            f"{live.version} went live by a rollback: {earlier}'s collection has missed every write since it "
            f"left service, so serving it would lose them; re-index it with `clicktune reindex --version {earlier}`")
    if previous is None:
        raise NothingToRollBackError("no previous live version to roll back to")
    collection = handle.collections.name_for(previous)
    if not handle.collections.exists(collection):
        raise NothingToRollBackError(
            f"the collection of {previous} ({collection}) was removed; re-index it with `clicktune reindex --version {previous}`"
        )
    # Alias and CURRENT move together while writers wait; a kill between the two is finished by the
    # next reconcile, which brings CURRENT to the alias (writers meanwhile mirror as if it had moved).
    with handle.writers_paused():
        if guard is not None:
            guard()
        handle.collections.point_alias_at(collection)
        crash_point("rollback.after_swap")
        handle.registry.rollback()
    return previous
