"""The ``clicktune`` command: what an operator types to inspect, re-index and roll back.

Exit codes scripts can rely on: 0 success, 1 an error the operator can fix (one line
``clicktune: error: ...`` on stderr, no traceback unless --debug or CLICKTUNE_DEBUG=1; see
``cli_errors``), 2 bad usage (Typer's own), 3 another process holds the alias's lock.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.qdrant import IndexHandle, close_shared_clients
from clicktune.scheduler.cli_errors import configure_logging, error_line, reported_here

app = typer.Typer(help="clicktune: retrieval that improves from clicks.", no_args_is_help=True, add_completion=False)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_ERROR = 1
EXIT_LOCKED = 3  # another retrain holds the lock: not an error, but nothing ran


class _State:
    debug = False
    settings: ClicktuneSettings | None = None
    guard: Callable[[], None] | None = None  # the held lease's ensure_held, inside _exclusive


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", envvar="CLICKTUNE_DEBUG",
                                        help="Show tracebacks and debug logs.")] = False,
    home: Annotated[str | None, typer.Option("--home", help="clicktune home folder (CLICKTUNE_HOME).")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Collection alias (CLICKTUNE_COLLECTION_ALIAS).")] = None,
) -> None:
    _State.debug = debug
    configure_logging(debug)
    overrides = {k: v for k, v in {"home": home, "collection_alias": alias}.items() if v is not None}
    _State.settings = ClicktuneSettings(**overrides)  # type: ignore[arg-type]


def _handle() -> IndexHandle:
    assert _State.settings is not None
    return IndexHandle.from_settings(_State.settings)


def _status_data(handle: IndexHandle) -> dict:
    live = handle.collections.live()
    pointer = handle.registry.pointer()
    log = ClickLog.from_settings(handle.settings)
    last = log.last_run()
    return {
        "clicks_total": log.count_clicks(),
        "clicks_since_last_run": log.count_clicks(since=last["started_at"] if last else None),
        "last_runs": [
            {"started_at": r["started_at"], "status": r["status"], "reason": r["outcome"].get("reason"),
             "candidate": r["outcome"].get("candidate")}
            for r in log.runs(limit=5)
        ],
        "alias": handle.collections.alias,
        "alias_target": live.collection if live else None,
        "current_version": pointer.version if pointer else None,
        "previous_version": pointer.previous if pointer else None,
        "collections": [
            {"collection": c.collection, "version": c.version, "points": handle.collections.count(c.collection)}
            for c in handle.collections.versions()
        ],
        "versions": [
            {k: row.get(k) for k in ("version", "status", "parent", "created_at", "embedding_dim", "index_precision")}
            for row in handle.registry.describe()
        ],
        "challenger": _challenger_data(handle, log),
    }


def _challenger_data(handle: IndexHandle, log) -> dict | None:  # noqa: ANN001
    from clicktune.scheduler.challenger import ChallengerPhase

    phase = ChallengerPhase(handle, log)
    running = phase.active()
    if running is None:
        return None
    verdict = phase.judge(running)
    return {"id": running.id, "champion": running.champion_version, "challenger": running.challenger_version,
            "started_at": running.started_at, "interleave_share": running.interleave_share, **verdict.as_dict()}


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Alias target, model versions and point counts."""
    data = _status_data(_handle())
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    console.print(f"alias [bold]{data['alias']}[/] -> {data['alias_target'] or '(none yet)'}")
    console.print(f"CURRENT model {data['current_version'] or '(none yet)'}; previous {data['previous_version'] or '-'}")
    table = Table("collection", "version", "points")
    for row in data["collections"]:
        table.add_row(row["collection"], row["version"], str(row["points"]))
    console.print(table)
    versions = Table("version", "status", "parent", "created", "dim", "indexed in")
    for row in data["versions"]:
        versions.add_row(row["version"], row["status"], row["parent"] or "-", str(row["created_at"])[:19],
                         str(row["embedding_dim"]), row["index_precision"] or "-")
    console.print(versions)
    challenger = data["challenger"]
    if challenger:
        console.print(
            f"challenger [bold]{challenger['challenger']}[/] vs champion {challenger['champion']} since "
            f"{str(challenger['started_at'])[:19]} ({challenger['interleave_share']:.0%} of searches interleaved): "
            f"{challenger['searches']} searches, {challenger['wins']} wins, {challenger['losses']} losses, "
            f"{challenger['ties']} ties, z {challenger['z']:+.2f} (boundary ±{challenger['boundary']:.2f}); "
            f"{challenger['reason']}"
        )
    else:
        console.print("challenger: none running")
    console.print(f"clicks: {data['clicks_total']} total, {data['clicks_since_last_run']} since the last run")
    for run in data["last_runs"]:
        console.print(f"  {str(run['started_at'])[:19]}  {run['status']:<9} {run['candidate'] or '-':<6} {run['reason']}")


@app.command()
def retrain(
    force: Annotated[bool, typer.Option("--force", help="Run even if fewer than min_new_clicks arrived.")] = False,
) -> None:
    """One tick of the loop: train a candidate and open its challenger phase, or judge the running one.

    Exit code 0 when the tick ran (challenger, running, promoted, dropped, rejected or skipped), 3 when
    another process holds the alias's lock, 1 when a step failed (alias and CURRENT are then unchanged).
    """
    from clicktune.scheduler.loop import RetrainLoop

    assert _State.settings is not None
    with reported_here("clicktune.scheduler.loop", _State.debug):
        outcome = RetrainLoop(_State.settings).tick(force=force)
    if outcome.status == "failed":
        _error(f"retrain failed, alias and CURRENT unchanged: {outcome.reason} (--debug shows the traceback)")
        raise typer.Exit(EXIT_ERROR)
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in outcome.steps.items())
    console.print(f"{outcome.status}: {outcome.reason}" + (f" [{steps}]" if steps else ""))
    if outcome.status == "locked":
        raise typer.Exit(EXIT_LOCKED)


@app.command(name="eval")
def evaluate(
    golden: Annotated[str | None, typer.Option("--golden", help="BEIR folder (queries.jsonl, qrels/).")] = None,
    split: Annotated[str, typer.Option("--split", help="qrels split of the golden folder.")] = "test",
) -> None:
    """Score the live collection: on the golden set if given, else on the held-out click queries."""
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.scheduler.evaluation import EvalSet, evaluate_collection
    from clicktune.scheduler.miner import MiningConfig, mine_feedback

    handle = _handle()
    live = handle.collections.require_live()
    if golden:
        eval_set = EvalSet.from_beir(golden, split=split)
    else:
        mined = mine_feedback(ClickLog.from_settings(handle.settings), lambda ids: {i: "" for i in ids},
                              MiningConfig(window_days=handle.settings.feedback_window_days))
        eval_set = EvalSet(mined.eval_queries, mined.eval_relevant, judged=mined.eval_judged)
    scores = evaluate_collection(handle.client, live.collection, handle.encoder(live.version), eval_set)
    console.print_json(json.dumps({"collection": live.collection, "set": eval_set.name, **scores.as_dict()}))


@app.command()
def history() -> None:
    """Every decision: offline checks and challenger phases, oldest first."""
    handle = _handle()
    table = Table("version", "status", "parent", "created", "pairs", "decision", "champion", "detail")
    for row in handle.registry.describe():
        decisions = row.get("decisions") or []
        base = [row["version"], row.get("status", "?"), row.get("parent") or "-", str(row.get("created_at"))[:19],
                str((row.get("training") or {}).get("pairs", "-"))]
        if not decisions:
            table.add_row(*base, "-", "-", "-")
        for decision in decisions:
            if decision.get("kind") == "challenger":
                detail = (f"{decision.get('searches', '-')} searches, {decision.get('wins', '-')} W / "
                          f"{decision.get('losses', '-')} L / {decision.get('ties', '-')} T, z {decision.get('z', '-')}: "
                          f"{decision.get('reason', '')}")
                table.add_row(*base, f"challenger {decision.get('outcome')}", decision.get("champion_version", "-"),
                              detail)
            else:
                passed = decision.get("passed", decision.get("promoted"))
                table.add_row(*base, "offline " + ("passed" if passed else "failed"),
                              decision.get("champion_version", "-"), decision.get("reason", ""))
            base = ["", "", "", "", ""]
    console.print(table)


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
    from clicktune.scheduler.reindex import BlueGreenReindexer

    with _exclusive("re-index") as handle:
        report = BlueGreenReindexer(handle, guard=_State.guard).run(version)
    console.print(
        f"{report.source} -> {report.target}: {report.points} points, {report.replayed} replayed, "
        f"{report.seconds.get('total', 0):.1f}s; alias and CURRENT now {report.version}"
    )


@app.command()
def rollback() -> None:
    """Alias and CURRENT back to the previous version (its collection is kept: no re-encoding)."""
    from clicktune.scheduler.reindex import rollback as do_rollback

    with _exclusive("roll back") as handle:
        version = do_rollback(handle, _State.guard)
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


challenger_app = typer.Typer(help="End a running challenger phase by hand.", no_args_is_help=True)
app.add_typer(challenger_app, name="challenger")


def _end_challenger(decision: str) -> None:
    from clicktune.adapters.errors import NoChallengerError
    from clicktune.scheduler.challenger import ChallengerPhase

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
    console.print(f"challenger {running.challenger_version}: {decision} by hand "
                  f"({verdict['wins']} wins, {verdict['losses']} losses, {verdict['ties']} ties, z {verdict['z']:+.2f})")


@challenger_app.command("promote")
def challenger_promote() -> None:
    """Promote the running challenger now, whatever its counts say."""
    _end_challenger("promote")


@challenger_app.command("drop")
def challenger_drop() -> None:
    """Drop the running challenger now: its collection is deleted, the champion stays."""
    _end_challenger("drop")


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
        message = error_line(exc, _State.settings)
        if message is None or _State.debug:
            raise
        _error(message)
        return EXIT_ERROR
    finally:
        close_shared_clients()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
