"""One write into every collection that may serve it: all of them, or none (docs/ARCHITECTURE.md invariant 15).

A write goes to the live collection, the one a rollback would serve and a running challenger's, one
after the other (each embeds with its own model). Checks at the door catch bad input, but a later
target can still fail after an earlier one was written: its model cannot load, Qdrant refuses the
upsert, the disk is full. Then the earlier targets hold documents that the caller was told were not
written, and the targets disagree: a promotion's count check drops a good challenger, and a rollback
removes documents users were shown. So before writing, :class:`MirroredWrite` reads what each target
holds under the ids written (payloads and vectors); when a target fails, every target written so far
(the failing one included, which may hold some of its batches) gets exactly that back, and the
caller's error is raised unchanged. Should putting a target back fail as well, :class:`PartialWriteError`
names each collection and whether it was put back.

A mirror target (rollback, challenger) whose collection is gone by the time it is written (a phase
dropped by an operator in another process, retention) is done: nothing can serve from it, so the
write is acknowledged, as it was applied everywhere that remains.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qdrant_client import QdrantClient, models

from clicktune.adapters.crashpoints import fail_point
from clicktune.adapters.qdrant.documents import CollectionDocumentStore
from clicktune.adapters.qdrant.errors import PartialWriteError
from clicktune.adapters.qdrant.layout import point_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteTarget:
    """One collection a write must reach; ``mirror`` is False for the live collection only."""

    collection: str
    store: CollectionDocumentStore
    mirror: bool


@dataclass
class _Before:
    """What a target held under the written ids before the write (points absent there are left out)."""

    target: WriteTarget
    points: list[models.PointStruct] = field(default_factory=list)


class MirroredWrite:
    """Apply one write to each target in order; on a failure, put every touched target back."""

    def __init__(self, client: QdrantClient, targets: Sequence[WriteTarget], ids: Sequence[str]) -> None:
        self.client = client
        self.targets = list(targets)
        self.ids = [str(i) for i in ids]

    def apply(self, write: Callable[[CollectionDocumentStore], Any]) -> list[Any]:
        """``write(store)`` for every target; its results, in target order (a vanished mirror's: None)."""
        before = [self._read(t) for t in self.targets]
        touched: list[_Before] = []
        results: list[Any] = []
        for state in before:
            target = state.target
            touched.append(state)
            try:
                if target.mirror:
                    fail_point("write.mirror")
                results.append(write(target.store))
            except Exception as exc:
                if target.mirror and not self.client.collection_exists(target.collection):
                    log.info("%s vanished during a write (a dropped phase, retention): nothing serves from it",
                             target.collection)
                    touched.pop()
                    results.append(None)
                    continue
                self._put_back(touched, exc)
                raise
        return results

    def _read(self, target: WriteTarget) -> _Before:
        if target.mirror and not self.client.collection_exists(target.collection):
            return _Before(target)
        records = self.client.retrieve(target.collection, [point_id(i) for i in self.ids],
                                       with_payload=True, with_vectors=True)
        return _Before(target, [models.PointStruct(id=r.id, vector=r.vector, payload=r.payload)  # type: ignore[arg-type]
                                for r in records])

    def _unchanged(self, state: _Before) -> bool:
        """Whether the target holds under the written ids exactly what it held before: then there is
        nothing to put back (a write refused before its first batch, say for a full disk, where putting
        back, itself a write, would be refused too)."""
        now = self._read(state.target).points
        as_tuples = lambda points: sorted((str(p.id), repr(p.payload), repr(p.vector)) for p in points)  # noqa: E731
        return as_tuples(now) == as_tuples(state.points)

    def _put_back(self, touched: list[_Before], cause: BaseException) -> None:
        """Each touched target: the written ids deleted, then what was there before restored."""
        failed: dict[str, str] = {}
        for state in touched:
            collection = state.target.collection
            if state.target.mirror and not self.client.collection_exists(collection):
                continue
            try:
                if self._unchanged(state):
                    continue
                self.client.delete(collection, models.PointIdsList(points=[point_id(i) for i in self.ids]), wait=True)
                if state.points:
                    self.client.upsert(collection, state.points, wait=True)
            except Exception as exc:  # noqa: BLE001 - reported below, with every target's state
                failed[collection] = f"{type(exc).__name__}: {exc}"
        if failed:
            restored = [s.target.collection for s in touched if s.target.collection not in failed]
            raise PartialWriteError(
                f"a write of {len(self.ids)} documents failed ({type(cause).__name__}: {cause}) and could not be "
                f"undone in {', '.join(f'{c} ({why})' for c, why in failed.items())}; put back in "
                f"{', '.join(restored) or 'none'}. Those collections may hold part of the write: write the same "
                "documents again (an add or a delete is idempotent) so every collection agrees",
                written=sorted(failed), restored=restored, ids=self.ids,
            ) from cause
