"""The ``clicktune`` command: what an operator types to inspect, re-index and roll back.

Exit codes scripts can rely on: 0 success, 1 an error the operator can fix (one line
``clicktune: error: ...`` on stderr, no traceback unless --debug or CLICKTUNE_DEBUG=1; see
``cli_errors``), 2 bad usage (Typer's own), 3 another process holds the alias's lock.

Imports are lazy: a command imports what it needs (Qdrant client, SQLAlchemy, training) inside its
body, so ``clicktune --help`` loads Typer and Rich only, and ``status`` never loads torch or
sentence-transformers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console

if TYPE_CHECKING:
    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.qdrant import IndexHandle

app = typer.Typer(help="clicktune: retrieval that improves from clicks.", no_args_is_help=True, add_completion=False)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_ERROR = 1
EXIT_LOCKED = 3  # another retrain holds the lock: not an error, but nothing ran


class _State:
    debug = False
    settings: ClicktuneSettings | None = None
    guard: Callable[[], None] | None = None  # the held lease's ensure_held, inside _exclusive
    alias: str | None = None  # --alias as given


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", envvar="CLICKTUNE_DEBUG",
                                        help="Show tracebacks and debug logs.")] = False,
    home: Annotated[str | None, typer.Option("--home", help="clicktune home folder (CLICKTUNE_HOME).")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Collection alias (CLICKTUNE_COLLECTION_ALIAS).")] = None,
) -> None:
    from clicktune.adapters import ClicktuneSettings
    from clicktune.scheduler.cli_errors import configure_logging

    _State.debug, _State.alias = debug, alias
    overrides = {k: v for k, v in {"home": home, "collection_alias": alias}.items() if v is not None}
    _State.settings = ClicktuneSettings(**overrides)  # type: ignore[arg-type]
    configure_logging(debug, _State.settings.log_level)  # --debug wins over log_level


def _handle() -> IndexHandle:
    from clicktune.adapters.qdrant import IndexHandle

    assert _State.settings is not None
    return IndexHandle.from_settings(_State.settings)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Alias target, versions, point counts, feedback, lock, next run and any challenger (creates nothing)."""
    from clicktune.scheduler.cli_status import print_status, status_data

    assert _State.settings is not None
    data = status_data(_State.settings)
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    print_status(data, console)


@app.command()
def retrain(
    force: Annotated[bool, typer.Option("--force", help="Run even if fewer than min_new_clicks arrived.")] = False,
) -> None:
    """One tick of the loop: train a candidate and open its challenger phase, or judge the running one.

    Exit code 0 when the tick ran (challenger, running, promoted, dropped, rejected or skipped), 3 when
    another process holds the alias's lock, 1 when a step failed (alias and CURRENT are then unchanged).
    """
    from clicktune.scheduler.cli_errors import reported_here
    from clicktune.scheduler.loop import RetrainLoop

    assert _State.settings is not None
    with reported_here("clicktune.scheduler.loop", _State.debug):
        outcome = RetrainLoop(_State.settings).tick(force=force)
    if outcome.status == "failed":
        _error(f"retrain failed, alias and CURRENT unchanged: {outcome.reason} (--debug shows the traceback)")
        raise typer.Exit(EXIT_ERROR)
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in outcome.steps.items())
    console.print(f"{outcome.status}: {outcome.reason}" + (f" [{steps}]" if steps else ""), markup=False)
    if outcome.status == "locked":
        raise typer.Exit(EXIT_LOCKED)


@app.command(name="eval")
def evaluate(
    golden: Annotated[str | None, typer.Option("--golden", help="BEIR folder (queries.jsonl, qrels/).")] = None,
    split: Annotated[str, typer.Option("--split", help="qrels split of the golden folder.")] = "test",
) -> None:
    """Score the live collection: on the golden set if given, else on the held-out click queries.

    Exit code 1 when there is no query to score (no held-out click query yet, or an empty split).
    """
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.scheduler.cli_errors import NothingToScoreError
    from clicktune.scheduler.cli_status import require_setup
    from clicktune.scheduler.evaluation import EvalSet, evaluate_version
    from clicktune.scheduler.miner import MiningConfig, mine_feedback
    from clicktune.scheduler.text import counted

    assert _State.settings is not None
    require_setup(_State.settings)
    handle = _handle()
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
    console.print_json(json.dumps({"collection": live.collection, "set": eval_set.name, **scores.as_dict()}))


@app.command()
def history(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the newest N runs.")] = 50,
) -> None:
    """What happened to the alias, oldest first: the loop's runs and the changes made by hand
    (rollbacks, re-indexes, phases ended by hand), each with its reason (cli_history)."""
    from clicktune.scheduler.cli_history import history_lines

    assert _State.settings is not None
    for line in history_lines(_State.settings, limit=limit):
        console.print(line, markup=False, highlight=False)


@app.command()
def worker() -> None:
    """Run the retrain schedule in this process (server mode); Ctrl-C stops it."""
    from clicktune.scheduler.jobs import run_worker

    assert _State.settings is not None
    console.print("clicktune worker: schedule from settings (CLICKTUNE_SCHEDULE_*), Ctrl-C to stop")
    run_worker(_State.settings)


@contextmanager
def _exclusive(action: str, *, allow_challenger: bool = False) -> Iterator[IndexHandle]:
    """The alias's lease (exit 3 when another process holds it) and, unless allowed, no running challenger.

    While it is held, ``_State.guard`` is the lease's ``ensure_held``: steps that move the alias call it first.
    """
    from clicktune.scheduler.challenger import ChallengerPhase
    from clicktune.scheduler.loop import RetrainLoop

    assert _State.settings is not None
    loop = RetrainLoop(_State.settings)
    with loop.lease() as held:
        if not held:
            err.print(f"another process holds the lock of alias {loop.alias!r}; try again later")
            raise typer.Exit(EXIT_LOCKED)
        handle = loop.handle
        if not allow_challenger:
            ChallengerPhase(handle, loop.feedback).ensure_none_running(action)
        _State.guard = held.ensure_held
        try:
            yield handle
        finally:
            _State.guard = None


@app.command()
def reindex(
    version: Annotated[str, typer.Option("--version", "-v", help="Registered model version, e.g. v0003.")],
) -> None:
    """Build <alias>__<version> from the live collection, verify it, swap the alias, promote CURRENT."""
    from contextlib import nullcontext

    from clicktune.scheduler.cli_progress import CopyProgress
    from clicktune.scheduler.reindex import BlueGreenReindexer

    with _exclusive("re-index") as handle:
        reindexer = BlueGreenReindexer(handle, guard=_State.guard)
        live = handle.collections.live()
        # No TTY, no bar: log the copy's progress at INFO instead (the reindexer reports a missing alias).
        progress = (nullcontext() if reindexer.show_progress or live is None
                    else CopyProgress(handle.index, live.version, version))
        with progress:
            report = reindexer.run(version)
        _by_hand("reindexed", f"re-indexed {report.points} points into {report.target}; alias and CURRENT moved",
                 handle, live.version if live else None, report.version)
    console.print(
        f"{report.source} -> {report.target}: {report.points} points, {report.replayed} replayed, "
        f"{report.seconds.get('total', 0):.1f}s; alias and CURRENT now {report.version}"
    )


@app.command()
def rollback() -> None:
    """Alias and CURRENT back to the previous version (its collection is kept: no re-encoding)."""
    from clicktune.scheduler.reindex import rollback as do_rollback

    with _exclusive("roll back") as handle:
        live = handle.collections.require_live()
        version = do_rollback(handle, _State.guard)
        _by_hand("rolled_back", f"alias and CURRENT back to {version}, its kept collection (no re-encoding)",
                 handle, live.version, version)
    console.print(f"rolled back: alias and CURRENT now {version}")


@app.command()
def repair() -> None:
    """Rebuild an unreadable CURRENT from the alias and the versions' metadata (the bad file is kept aside)."""
    with _exclusive("repair", allow_challenger=True) as handle:
        live = handle.collections.live()
        repaired = handle.registry.repair(live.version if live else None)
    if repaired is None:
        console.print("CURRENT is readable: nothing to repair")
        return
    pointer, kept = repaired
    console.print(f"CURRENT rebuilt: {pointer.version} live, history {', '.join(pointer.history) or '-'}"
                  + (f"; the unreadable file is kept as {kept}" if kept else ""))


@app.command(name="import")
def import_(
    collection: Annotated[str, typer.Argument(help="The langchain-qdrant collection; its name becomes the alias.")],
    content_key: Annotated[str, typer.Option("--content-key", help="Payload key of the texts.")] = "page_content",
    metadata_key: Annotated[str, typer.Option("--metadata-key", help="Payload key of the metadata.")] = "metadata",
    vector_name: Annotated[str | None, typer.Option(
        "--vector-name", help="The dense vector to copy (default: the collection's only one).")] = None,
) -> None:
    """Adopt a QdrantVectorStore collection: copy it into <collection>__<CURRENT>, then make its name the alias.

    Ids, texts and metadata are kept; vectors are copied when our model made them (checked on a sample),
    else re-encoded. Stop the collection's writers first. Safe to re-run after a crash.
    """
    from clicktune.adapters.errors import ConfigurationError
    from clicktune.adapters.qdrant import import_collection
    from clicktune.adapters.settings import load_settings

    assert _State.settings is not None
    if _State.alias is not None and _State.alias != collection:
        raise ConfigurationError(f"--alias {_State.alias} and the collection {collection} differ: the collection's "
                                 "name becomes the alias, so drop --alias")
    if not collection or "__" in collection or "/" in collection:
        raise ConfigurationError(f"cannot import {collection!r}: its name becomes the alias, and an alias may not "
                                 "contain '__' (clicktune's <alias>__<version>) or '/'")
    _State.settings = load_settings(_State.settings, collection_alias=collection)
    with _exclusive("import") as handle:
        report = import_collection(handle, content_key=content_key, metadata_key=metadata_key,
                                   vector_name=vector_name, guard=_State.guard)
    if report.status != "imported":
        done = "finished an interrupted import" if report.status == "finished" else "nothing to import"
        console.print(f"{done}: {collection} is the alias of {report.target} ({report.points} points)")
        return
    console.print(
        f"{collection} -> {report.target}: {report.points} points, vectors {report.vectors} ({report.reason}); "
        f"alias {collection} -> {report.target} (readers of {collection} found no collection for "
        f"{1000 * (report.window_seconds or 0):.0f} ms); {report.seconds.get('total', 0):.1f}s in all")


@app.command(name="migrate-engine")
def migrate_engine() -> None:
    """Move this home's embedded Qdrant from local mode to the edge engine; stop the app first.

    Vectors and payloads are copied as they are, verified, then the folders are swapped; the local-mode
    folder is kept beside it as <folder>.local-backup. Safe to re-run after a crash.
    """
    from clicktune.adapters.errors import ConfigurationError
    from clicktune.adapters.qdrant import migrate_to_edge
    settings = _State.settings
    assert settings is not None
    path = settings.resolved_qdrant_path
    if settings.qdrant_url or path in (None, ":memory:"):
        raise ConfigurationError("migrate-engine moves an embedded Qdrant folder; this home uses "
                                 f"{settings.qdrant_url or 'an in-memory Qdrant'}")
    report = migrate_to_edge(path, hnsw_from_documents=settings.hnsw_from_documents,
                             show_progress=settings.show_progress())
    if report.status == "already":
        console.print(f"{report.path} is not a local-mode folder (already on the edge engine): nothing to do")
        return
    console.print(f"{report.path} is on the edge engine now: {report.points} points in {report.collections} "
                  f"collections, {report.aliases} aliases; the local-mode folder is kept as {report.backup} "
                  "(delete it when satisfied)")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def demo(ctx: typer.Context) -> None:
    """The whole loop on the bundled SciFact in a scratch home, with a report (`clicktune demo --help`).

    The same as `make demo` in a checkout: it opens the app's store registered under the
    `clicktune.stores` entry point, so it runs from an installed wheel too. Ignores --home and --alias.
    """
    from clicktune.scheduler.demo import main as run_demo_main

    run_demo_main(ctx.args, prog="clicktune demo")


challenger_app = typer.Typer(help="End a running challenger phase by hand.", no_args_is_help=True)
app.add_typer(challenger_app, name="challenger")


def _end_challenger(decision: str) -> None:
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.errors import NoChallengerError
    from clicktune.scheduler.challenger import ChallengerPhase
    from clicktune.scheduler.text import counted

    with _exclusive("end a challenger", allow_challenger=True) as handle:
        phase = ChallengerPhase(handle, ClickLog.from_settings(handle.settings), guard=_State.guard)
        running = phase.reconcile()
        if running is None:
            raise NoChallengerError(f"no challenger is running on alias {handle.collections.alias!r}")
        verdict = {**phase.judge(running).as_dict(), "decision": decision, "reason": f"{decision} by hand"}
        if decision == "promote":
            phase.promote(running, verdict)
        else:
            phase.drop(running, verdict)
        _by_hand("promoted" if decision == "promote" else "dropped",
                 f"{decision} by hand: {verdict['wins']} W / {verdict['losses']} L / {verdict['ties']} T, "
                 f"z {verdict['z']:+.2f}", handle, running.champion_version, running.challenger_version, verdict)
    console.print(f"challenger {running.challenger_version}: {decision} by hand "
                  f"({counted(verdict['wins'], 'win')}, {counted(verdict['losses'], 'loss', 'losses')}, "
                  f"{counted(verdict['ties'], 'tie')}, z {verdict['z']:+.2f})")


@challenger_app.command("promote")
def challenger_promote() -> None:
    """Promote the running challenger now, whatever its counts say."""
    _end_challenger("promote")


@challenger_app.command("drop")
def challenger_drop() -> None:
    """Drop the running challenger now: its collection is deleted, the champion stays."""
    _end_challenger("drop")


def _by_hand(status: Literal["rolled_back", "reindexed", "promoted", "dropped"], reason: str, handle: IndexHandle,
             champion: str | None, candidate: str | None, decision: dict[str, Any] | None = None) -> None:
    """Record a change made by hand in the run history, so `clicktune history` lists it."""
    from clicktune.scheduler.cli_history import ByHand

    ByHand(status, reason, handle.collections.alias, champion, candidate, decision).record(handle.settings)


def _error(message: str) -> None:
    print(f"clicktune: error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the Typer app; an error the operator can fix becomes one line on stderr and exit code 1."""
    _State.debug, _State.settings = False, None
    try:
        app(args=argv, prog_name="clicktune")
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_ERROR
    except Exception as exc:
        from clicktune.scheduler.cli_errors import error_line

        message = error_line(exc, _State.settings)
        if message is None or _State.debug:
            raise
        _error(message)
        return EXIT_ERROR
    finally:
        if "clicktune.adapters.qdrant" in sys.modules:  # else no client was opened: don't import Qdrant to close none
            from clicktune.adapters.qdrant import close_shared_clients

            close_shared_clients()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
