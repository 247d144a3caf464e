"""The bodies of the commands that change or score the live index, each returning an :class:`Answer`.

One body serves two paths. Run here (``clicktune rollback`` when this process can open Qdrant),
the CLI prints the answer; sent to the app (embedded Qdrant held by the app, see
``clicktune.scheduler.control``), the app's loop runs the same body and stores the answer as JSON,
and the CLI prints that. So both paths print the same lines and exit with the same codes.

An error an operator can fix is raised, as before: here ``clicktune.scheduler.cli.main`` turns it
into its one line, in the app :func:`execute` does the same with ``cli_errors.error_line``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from clicktune.adapters import ClicktuneError, ClicktuneSettings
from clicktune.scheduler.text import counted

if TYPE_CHECKING:
    from clicktune.adapters.clicklog import ControlRequest
    from clicktune.adapters.qdrant import IndexHandle

log = logging.getLogger(__name__)

EXIT_ERROR = 1
EXIT_LOCKED = 3  # another process holds the alias's lease: not an error, but nothing ran


class Answer(BaseModel):
    """What a command prints and its exit code: the unit both paths render alike.

    ``out`` lines go to stdout as plain text (no Rich markup), ``json_out`` to stdout as
    JSON, ``err`` lines to stderr, ``error`` as ``clicktune: error: <error>`` on stderr.
    """

    exit_code: int = 0
    out: list[str] = Field(default_factory=list)
    json_out: str | None = None
    err: list[str] = Field(default_factory=list)
    error: str | None = None


class AliasLocked(Exception):
    """Another process holds the alias's lease: the command exits 3 with this message, nothing ran.

    Not a ``ClicktuneError`` (those exit 1)."""


@contextmanager
def exclusive(settings: ClicktuneSettings, action: str, *, allow_challenger: bool = False,
              handle: IndexHandle | None = None) -> Iterator[tuple[IndexHandle, Callable[[], None]]]:
    """The alias's lease (:class:`AliasLocked` when another process holds it) and, unless allowed, no
    running challenger; yields the handle and the lease's ``ensure_held`` for the steps that commit."""
    from clicktune.scheduler.challenger import ChallengerPhase
    from clicktune.scheduler.loop import RetrainLoop

    loop = RetrainLoop(settings, handle=handle)
    with loop.lease() as held:
        if not held:
            raise AliasLocked(f"another process holds the lock of alias {loop.alias!r}; try again later")
        if not allow_challenger:
            ChallengerPhase(loop.handle, loop.feedback).ensure_none_running(action)
        yield loop.handle, held.ensure_held


def by_hand(status: Literal["rolled_back", "reindexed", "promoted", "dropped"], reason: str, handle: IndexHandle,
            champion: str | None, candidate: str | None, decision: dict[str, Any] | None = None) -> None:
    """Record a change made by hand in the run history, so `clicktune history` lists it."""
    from clicktune.scheduler.cli_history import ByHand

    ByHand(status, reason, handle.collections.alias, champion, candidate, decision).record(handle.settings)


def retrain(settings: ClicktuneSettings, *, force: bool = False, handle: IndexHandle | None = None,
            debug: bool = False) -> Answer:
    """One tick of the loop (``clicktune retrain``)."""
    from clicktune.scheduler.cli_errors import reported_here
    from clicktune.scheduler.loop import RetrainLoop

    with reported_here("clicktune.scheduler.loop", debug):
        outcome = RetrainLoop(settings, handle=handle).tick(force=force)
    if outcome.status == "failed":
        return Answer(exit_code=EXIT_ERROR, error=f"retrain failed, alias and CURRENT unchanged: {outcome.reason} "
                                                  "(--debug shows the traceback)")
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in outcome.steps.items())
    return Answer(exit_code=EXIT_LOCKED if outcome.status == "locked" else 0,
                  out=[f"{outcome.status}: {outcome.reason}" + (f" [{steps}]" if steps else "")])


def rollback(settings: ClicktuneSettings, *, handle: IndexHandle | None = None) -> Answer:
    from clicktune.scheduler.reindex import rollback as do_rollback

    with exclusive(settings, "roll back", handle=handle) as (live_handle, guard):
        live = live_handle.collections.require_live()
        version = do_rollback(live_handle, guard)
        by_hand("rolled_back", f"alias and CURRENT back to {version}, its kept collection (no re-encoding)",
                live_handle, live.version, version)
    return Answer(out=[f"rolled back: alias and CURRENT now {version}"])


def reindex(settings: ClicktuneSettings, version: str, *, handle: IndexHandle | None = None,
            show_copy_progress: bool = True) -> Answer:
    from clicktune.scheduler.cli_progress import CopyProgress
    from clicktune.scheduler.reindex import BlueGreenReindexer

    with exclusive(settings, "re-index", handle=handle) as (live_handle, guard):
        reindexer = BlueGreenReindexer(live_handle, guard=guard)
        live = live_handle.collections.live()
        # No TTY, no bar: log the copy's progress at INFO instead (the reindexer reports a missing alias).
        progress = (nullcontext() if reindexer.show_progress or live is None or not show_copy_progress
                    else CopyProgress(live_handle.index, live.version, version))
        with progress:
            report = reindexer.run(version)
        by_hand("reindexed", f"re-indexed {report.points} points into {report.target}; alias and CURRENT moved",
                live_handle, live.version if live else None, report.version)
    return Answer(out=[
        f"{report.source} -> {report.target}: {report.points} points, {report.replayed} replayed, "
        f"{report.seconds.get('total', 0):.1f}s; alias and CURRENT now {report.version}"])


def repair(settings: ClicktuneSettings, *, handle: IndexHandle | None = None) -> Answer:
    """An unreadable CURRENT rebuilt from the alias, or a lost alias (the edge engine's alias file) from
    CURRENT; a bad file is kept aside."""
    from clicktune.adapters.errors import CorruptRegistryError

    out: list[str] = []
    with exclusive(settings, "repair", allow_challenger=True, handle=handle) as (live_handle, _guard):
        try:
            pointer = live_handle.registry.pointer()
        except CorruptRegistryError:
            pointer = None  # CURRENT is the one to repair, from the alias
        restored = live_handle.collections.restore_alias(pointer.version) if pointer is not None else None
        if restored is not None:
            out.append(f"alias rebuilt: {restored.alias} -> {restored.collection} (from CURRENT)"
                       + (f"; the unreadable file is kept as {restored.kept}" if restored.kept else ""))
        live = live_handle.collections.live()
        repaired = live_handle.registry.repair(live.version if live else None)
    if repaired is None:
        return Answer(out=out or ["CURRENT is readable: nothing to repair"])
    pointer, kept = repaired
    return Answer(out=[*out, f"CURRENT rebuilt: {pointer.version} live, history {', '.join(pointer.history) or '-'}"
                       + (f"; the unreadable file is kept as {kept}" if kept else "")])


def end_challenger(settings: ClicktuneSettings, decision: Literal["promote", "drop"], *,
                   handle: IndexHandle | None = None) -> Answer:
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.errors import NoChallengerError
    from clicktune.scheduler.challenger import ChallengerPhase

    with exclusive(settings, "end a challenger", allow_challenger=True, handle=handle) as (live_handle, guard):
        phase = ChallengerPhase(live_handle, ClickLog.from_settings(live_handle.settings), guard=guard)
        running = phase.reconcile()
        if running is None:
            raise NoChallengerError(f"no challenger is running on alias {live_handle.collections.alias!r}")
        verdict = {**phase.judge(running).as_dict(), "decision": decision, "reason": f"{decision} by hand"}
        if decision == "promote":
            phase.promote(running, verdict)
        else:
            phase.drop(running, verdict)
        by_hand("promoted" if decision == "promote" else "dropped",
                f"{decision} by hand: {verdict['wins']} W / {verdict['losses']} L / {verdict['ties']} T, "
                f"z {verdict['z']:+.2f}", live_handle, running.champion_version, running.challenger_version, verdict)
    return Answer(out=[f"challenger {running.challenger_version}: {decision} by hand "
                       f"({counted(verdict['wins'], 'win')}, {counted(verdict['losses'], 'loss', 'losses')}, "
                       f"{counted(verdict['ties'], 'tie')}, z {verdict['z']:+.2f})"])


def evaluate(settings: ClicktuneSettings, golden: str | None, split: str, *,
             handle: IndexHandle | None = None) -> Answer:
    """Score the live collection on a golden BEIR folder or on the held-out click queries."""
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.qdrant import IndexHandle
    from clicktune.scheduler.cli_errors import NothingToScoreError
    from clicktune.scheduler.cli_status import require_setup
    from clicktune.scheduler.evaluation import EvalSet, evaluate_version
    from clicktune.scheduler.miner import MiningConfig, mine_feedback

    require_setup(settings)
    handle = handle or IndexHandle.from_settings(settings)
    live = handle.collections.require_live()
    if golden:
        eval_set = EvalSet.from_beir(golden, split=split)
        if not eval_set.queries:
            raise NothingToScoreError(f"nothing to score: the golden set {golden} has no query with a relevant "
                                      f"document in split {split!r}; check --golden and --split")
    else:
        window = handle.settings.feedback.window_days
        mined = mine_feedback(ClickLog.from_settings(handle.settings), lambda ids: {i: "" for i in ids},
                              MiningConfig.from_settings(handle.settings), alias=handle.collections.alias)
        eval_set = EvalSet(mined.eval_queries, mined.eval_relevant, judged=mined.eval_judged)
        if not eval_set.queries:
            raise NothingToScoreError(
                "nothing to score: no held-out click query" + (f" in the last {window:g} days" if window else "")
                + f" ({counted(mined.stats.get('clicks', 0), 'click')} mined; held-out queries are a fixed share of the clicked "
                "queries); collect more clicks, or pass --golden with a BEIR folder")
    scores = evaluate_version(handle, live.version, eval_set)
    return Answer(json_out=json.dumps({"collection": live.collection, "set": eval_set.name, **scores.as_dict()}))


def index_status(settings: ClicktuneSettings, *, handle: IndexHandle | None = None) -> Answer:
    """The part of ``clicktune status`` only Qdrant knows (alias target, collections), as JSON."""
    from clicktune.adapters.qdrant import IndexHandle
    from clicktune.scheduler.cli_status import qdrant_data

    handle = handle or IndexHandle.from_settings(settings)
    return Answer(json_out=json.dumps(qdrant_data(handle.collections)))


#: Commands that take the alias's lease (one at a time per loop) and those that only read.
LEASED_COMMANDS = frozenset({"retrain", "rollback", "reindex", "repair", "challenger-promote", "challenger-drop"})
READ_COMMANDS = frozenset({"eval", "status"})


def run_request(request: ControlRequest, settings: ClicktuneSettings, handle: IndexHandle) -> Answer:
    """A request's command, run by the app's loop on the app's handle, as an :class:`Answer`.

    Arguments are read by name into the same typed parameters the command line has; an argument of
    the wrong type is refused, never guessed at.
    """
    args = request.arguments

    def text(name: str) -> str | None:
        value = args.get(name)
        if value is not None and not isinstance(value, str):
            raise ClicktuneError(f"request {request.id}: argument {name!r} must be text, not {value!r}")
        return value

    if request.command == "retrain":
        return retrain(settings, force=args.get("force") is True, handle=handle)
    if request.command == "rollback":
        return rollback(settings, handle=handle)
    if request.command == "reindex":
        return reindex(settings, text("version") or "", handle=handle, show_copy_progress=False)
    if request.command == "repair":
        return repair(settings, handle=handle)
    if request.command in ("challenger-promote", "challenger-drop"):
        return end_challenger(settings, "promote" if request.command == "challenger-promote" else "drop",
                              handle=handle)
    if request.command == "eval":
        golden = text("golden")
        return evaluate(settings, str(Path(golden)) if golden else None, text("split") or "test", handle=handle)
    return index_status(settings, handle=handle)


def execute(request: ControlRequest, settings: ClicktuneSettings, handle: IndexHandle) -> Answer:
    """:func:`run_request`, with every failure turned into the answer the command line would give."""
    from clicktune.scheduler.cli_errors import error_line

    try:
        return run_request(request, settings, handle)
    except AliasLocked as exc:
        return Answer(exit_code=EXIT_LOCKED, err=[str(exc)])
    except Exception as exc:  # noqa: BLE001 - the answer carries it to the operator
        message = error_line(exc, settings)
        if message is None:  # a bug: the app's log keeps the traceback
            log.error("request %d (%s) failed", request.id, request.command, exc_info=True)
            message = f"{type(exc).__name__}: {exc} (a bug in clicktune; the app's log has the traceback)"
        return Answer(exit_code=EXIT_ERROR, error=message)
