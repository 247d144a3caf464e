"""The ``clicktune`` command: what an operator types to inspect, re-index and roll back.

Exit codes scripts can rely on: 0 success, 1 an error the operator can fix (one line
``clicktune: error: ...`` on stderr, no traceback unless --debug or CLICKTUNE_DEBUG=1; see
``cli_errors``), 2 bad usage (Typer's own), 3 another process holds the alias's lock.

Beside a running app: with embedded Qdrant only one process can open the folder. When the app holds
it, the commands that need Qdrant (retrain, reindex, rollback, repair, eval, challenger promote|drop)
are sent to the loop the app runs (``start_background_loop``) through the feedback database and
print its answer, the same lines and exit codes (``clicktune.scheduler.control``); ``status`` and
``history`` read the database and the registry here and ask the loop only for what Qdrant holds.

Imports are lazy: a command imports what it needs (Qdrant client, SQLAlchemy, training) inside its
body, so ``clicktune --help`` loads Typer and Rich only, and ``status`` never loads torch or
sentence-transformers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from clicktune.scheduler.cli_observability import DEFAULT_METRICS_HOST, report

if TYPE_CHECKING:
    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.qdrant import IndexHandle

app = typer.Typer(help="clicktune: retrieval that improves from clicks.", no_args_is_help=True, add_completion=False)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_ERROR = 1
EXIT_LOCKED = 3  # another retrain holds the lock: not an error, but nothing ran

if TYPE_CHECKING:
    from clicktune.adapters.clicklog.requests import PlainValue, RequestCommand
    from clicktune.scheduler.commands import Answer

#: How long a command sent to the app's loop waits for its answer.
Timeout = Annotated[float, typer.Option(
    "--timeout", min=1, help="When the app holds embedded Qdrant: seconds to wait for its loop to run this.")]


class _State:
    debug = False
    settings: ClicktuneSettings | None = None
    alias: str | None = None  # --alias as given
    via_loop = False  # --via-loop: send the command to the serving loop whatever


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", envvar="CLICKTUNE_DEBUG",
                                        help="Show tracebacks and debug logs.")] = False,
    home: Annotated[str | None, typer.Option("--home", help="clicktune home folder (CLICKTUNE_HOME).")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Collection alias (CLICKTUNE_COLLECTION_ALIAS).")] = None,
    via_loop: Annotated[bool, typer.Option(
        "--via-loop", help="Send the command to the loop serving requests (the app's, or `clicktune worker`) even "
                           "when this process could run it: with a Qdrant server, a reindex then replays the "
                           "app's writes.")] = False,
) -> None:
    from clicktune.adapters import ClicktuneSettings
    from clicktune.scheduler.cli_errors import configure_logging

    _State.debug, _State.alias, _State.via_loop = debug, alias, via_loop
    overrides = {k: v for k, v in {"home": home, "collection_alias": alias}.items() if v is not None}
    _State.settings = ClicktuneSettings(**overrides)  # type: ignore[arg-type]
    configure_logging(debug, _State.settings.log_level)  # --debug wins over log_level


def _handle() -> IndexHandle:
    from clicktune.adapters.qdrant import IndexHandle

    assert _State.settings is not None
    return IndexHandle.from_settings(_State.settings)


def _emit(answer: Answer) -> None:
    """Print an answer, whichever process ran the command, and exit with its code."""
    for line in answer.out:
        console.print(line, markup=False)  # plain text: a retrain's "[mine 1.2s, ...]" is not a style
    if answer.json_out is not None:
        console.print_json(answer.json_out)
    for line in answer.err:
        err.print(line)
    if answer.error is not None:
        _error(answer.error)
    if answer.exit_code:
        raise typer.Exit(answer.exit_code)


#: Another `clicktune` command may hold the folder and be about to take the lease (it opens the folder
#: first): how long to wait for that before saying that nothing serves.
LEASE_GRACE_SECONDS = 5.0


def _here_or_in_app(command: RequestCommand, arguments: dict[str, PlainValue], timeout: float,
                    run_here: Callable[[IndexHandle], Answer]) -> None:
    """Run the command here if this process can open Qdrant (unchanged), else send it to the app's loop."""
    from clicktune.adapters.qdrant import EmbeddedFolderInUseError
    from clicktune.scheduler.commands import AliasLocked, Answer

    assert _State.settings is not None
    try:
        if _State.via_loop:
            raise EmbeddedFolderInUseError("--via-loop: the command runs in the loop serving requests", "")
        handle = _handle()
    except EmbeddedFolderInUseError as held:
        from clicktune.scheduler.control import NoLoopServingError, locked_answer, send

        try:
            answer = send(_State.settings, command, arguments, timeout=timeout, why=str(held))
        except NoLoopServingError:
            locked = locked_answer(_State.settings, command, wait=LEASE_GRACE_SECONDS)
            if locked is None:
                raise
            answer = locked
        _emit(answer)
        return
    try:
        answer = run_here(handle)
    except AliasLocked as exc:
        answer = Answer(exit_code=EXIT_LOCKED, err=[str(exc)])
    _emit(answer)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Alias target, versions, point counts, feedback, lock, next run and any challenger (creates nothing).

    While an app holds embedded Qdrant, what only Qdrant knows comes from the app's loop, or is marked unread.
    """
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
    timeout: Timeout = 3600,
) -> None:
    """One tick of the loop: train a candidate and open its challenger phase, or judge the running one.

    Exit code 0 when the tick ran (challenger, running, promoted, dropped, rejected or skipped), 3 when
    another process holds the alias's lock, 1 when a step failed (alias and CURRENT are then unchanged).
    """
    from clicktune.scheduler import commands

    assert _State.settings is not None
    settings, debug = _State.settings, _State.debug
    _here_or_in_app("retrain", {"force": force}, timeout,
                    lambda handle: commands.retrain(settings, force=force, handle=handle, debug=debug))


@app.command(name="eval")
def evaluate(
    golden: Annotated[str | None, typer.Option("--golden", help="BEIR folder (queries.jsonl, qrels/).")] = None,
    split: Annotated[str, typer.Option("--split", help="qrels split of the golden folder.")] = "test",
    timeout: Timeout = 600,
) -> None:
    """Score the live collection: on the golden set if given, else on the held-out click queries.

    Exit code 1 when there is no query to score (no held-out click query yet, or an empty split).
    """
    from pathlib import Path

    from clicktune.scheduler import commands
    from clicktune.scheduler.cli_status import require_setup

    assert _State.settings is not None
    settings = _State.settings
    require_setup(settings)
    golden_path = str(Path(golden).resolve()) if golden else None  # the app's working folder may differ
    _here_or_in_app("eval", {"golden": golden_path, "split": split}, timeout,
                    lambda handle: commands.evaluate(settings, golden, split, handle=handle))


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
def worker(
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port.")] = None,
    metrics_host: Annotated[str, typer.Option("--metrics-host", help="Address /metrics listens on.")] = DEFAULT_METRICS_HOST,
) -> None:
    """Run the retrain schedule in this process (server mode); Ctrl-C stops it."""
    from clicktune.scheduler.cli_observability import start_metrics_server
    from clicktune.scheduler.jobs import run_worker

    assert _State.settings is not None
    if metrics_port is not None:
        start_metrics_server(_State.settings, metrics_port, metrics_host)
    console.print("clicktune worker: schedule from settings (CLICKTUNE_SCHEDULE_*), Ctrl-C to stop")
    run_worker(_State.settings)


@app.command()
def reindex(
    version: Annotated[str, typer.Option("--version", "-v", help="Registered model version, e.g. v0003.")],
    timeout: Timeout = 3600,
) -> None:
    """Build <alias>__<version> from the live collection, verify it, swap the alias, promote CURRENT."""
    from clicktune.scheduler import commands

    assert _State.settings is not None
    settings = _State.settings
    _here_or_in_app("reindex", {"version": version}, timeout,
                    lambda handle: commands.reindex(settings, version, handle=handle))


@app.command()
def rollback(timeout: Timeout = 600) -> None:
    """Alias and CURRENT back to the previous version (its collection is kept: no re-encoding)."""
    from clicktune.scheduler import commands

    assert _State.settings is not None
    settings = _State.settings
    _here_or_in_app("rollback", {}, timeout, lambda handle: commands.rollback(settings, handle=handle))


@app.command()
def repair(timeout: Timeout = 600) -> None:
    """Rebuild an unreadable CURRENT from the alias and the versions' metadata, or a lost alias (the edge
    engine's alias file) from CURRENT; a bad file is kept aside."""
    from clicktune.scheduler import commands

    assert _State.settings is not None
    settings = _State.settings
    _here_or_in_app("repair", {}, timeout, lambda handle: commands.repair(settings, handle=handle))


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
    from clicktune.scheduler.commands import AliasLocked, exclusive

    _State.settings = load_settings(_State.settings, collection_alias=collection)
    try:
        with exclusive(_State.settings, "import") as (handle, guard):
            report = import_collection(handle, content_key=content_key, metadata_key=metadata_key,
                                       vector_name=vector_name, guard=guard)
    except AliasLocked as exc:
        err.print(str(exc))
        raise typer.Exit(EXIT_LOCKED) from None
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


app.command()(report)  # clicktune report --html FILE (scheduler/cli_observability.py)

challenger_app = typer.Typer(help="End a running challenger phase by hand.", no_args_is_help=True)
app.add_typer(challenger_app, name="challenger")


def _end_challenger(decision: Literal["promote", "drop"], timeout: float) -> None:
    from clicktune.scheduler import commands

    assert _State.settings is not None
    settings = _State.settings
    _here_or_in_app("challenger-promote" if decision == "promote" else "challenger-drop", {}, timeout,
                    lambda handle: commands.end_challenger(settings, decision, handle=handle))


@challenger_app.command("promote")
def challenger_promote(timeout: Timeout = 600) -> None:
    """Promote the running challenger now, whatever its counts say."""
    _end_challenger("promote", timeout)


@challenger_app.command("drop")
def challenger_drop(timeout: Timeout = 600) -> None:
    """Drop the running challenger now: its collection is deleted, the champion stays."""
    _end_challenger("drop", timeout)


def _error(message: str) -> None:
    print(f"clicktune: error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the Typer app; an error the operator can fix becomes one line on stderr and exit code 1."""
    _State.debug, _State.settings, _State.via_loop = False, None, False
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
