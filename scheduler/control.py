"""The control plane: commands typed in another shell, run by the loop inside the app.

Embedded Qdrant admits one process. While an app holds the folder, ``clicktune retrain`` or
``rollback`` cannot open it, so they send the command through the feedback database instead
(``adapters/clicklog/requests.py``): :class:`RequestServer`, started with the app's loop by
``start_background_loop`` (and by ``clicktune worker``), claims each request within
``request_poll_seconds``, runs the same command body the CLI would
(``clicktune.scheduler.commands``) on the app's own Qdrant client, under the alias's lease where
the command takes it, and writes the :class:`~clicktune.scheduler.commands.Answer` back; the CLI
(:func:`send`) waits for it and prints it. No port, no credential: whoever can write the feedback
database can already stop the app's training, and nothing but a command name and its plain
arguments travels.

A request left ``running`` by a process that died is marked ``failed`` ("interrupted") by the
next loop that starts, or by the CLI waiting on it, and is never run again: a retrain or a
rollback is not idempotent, and the command's own crash safety (invariants 3 and 13) already left
the index consistent.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING

from clicktune.adapters.clicklog import ClickLog, ControlRequest, LoopBeat
from clicktune.adapters.crashpoints import crash_point
from clicktune.adapters.errors import ClicktuneError
from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.commands import (
    EXIT_ERROR,
    EXIT_LOCKED,
    LEASED_COMMANDS,
    READ_COMMANDS,
    Answer,
    execute,
)

if TYPE_CHECKING:
    from clicktune.adapters.clicklog.requests import PlainValue, RequestCommand
    from clicktune.adapters.qdrant import IndexHandle

log = logging.getLogger(__name__)

#: A loop refreshes its heartbeat this often; one not seen for STALE_SECONDS is taken for dead.
BEAT_SECONDS = 5.0
STALE_SECONDS = 20.0
#: Finished requests are kept this long (``status``'s own reads of the app's Qdrant: an hour).
KEEP_REQUESTS = timedelta(days=90)


class NoLoopServingError(ClicktuneError):
    """The embedded Qdrant folder is held by another process and no clicktune loop serves requests for
    this alias: nothing can run the command (start the app's loop, or stop that process)."""


def this_host() -> str:
    return socket.gethostname()


def _owner_parts(owner: str) -> tuple[str, int | None]:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def alive(owner: str, beats: Collection[LoopBeat]) -> bool:
    """Whether the loop ``owner`` still runs: a fresh heartbeat, and on this host a live pid (so a
    SIGKILLed app is seen dead at once, without waiting for its heartbeat to go stale)."""
    if not any(b.owner == owner for b in beats):
        return False
    host, pid = _owner_parts(owner)
    return host != this_host() or pid is None or _pid_alive(pid)


def serving_loops(feedback: ClickLog, alias: str) -> list[LoopBeat]:
    """The loops that serve ``alias``'s requests now (fresh heartbeat, and alive on this host)."""
    beats = feedback.requests.loops(alias, seen_within=STALE_SECONDS)
    return [b for b in beats if alive(b.owner, beats)]


def reap_interrupted(feedback: ClickLog, alias: str) -> list[int]:
    """Mark ``failed`` the running requests whose owner died; returns their ids. Never re-runs them.

    Dead loops' heartbeat rows (a process killed before it could take its row away) go too."""
    fresh = feedback.requests.loops(alias, seen_within=STALE_SECONDS)
    for beat in feedback.requests.loops(alias):
        if not alive(beat.owner, fresh):
            feedback.requests.leave(beat.owner)
    beats = feedback.requests.loops(alias, seen_within=STALE_SECONDS)
    reaped = []
    for request in feedback.requests.running(alias):
        owner = request.owner or ""
        if not alive(owner, beats) and feedback.requests.interrupt(
                request.id, owner, f"interrupted: {owner} stopped before finishing it; not run again (a "
                                   f"{request.command} is not safe to repeat): check `clicktune status`"):
            log.warning("request %d (%s) was interrupted when %s stopped; marked failed, not re-run",
                        request.id, request.command, owner)
            reaped.append(request.id)
    return reaped


class RequestServer:
    """Serves one alias's control requests from inside the app, beside its scheduled loop.

    Two worker threads claim requests: one for the commands that take the alias's lease (one at a
    time, in order), one for read-only ones (``status``, ``eval``), so ``clicktune status`` answers
    while a retrain runs. A third thread keeps the heartbeat row fresh and reaps interrupted requests.
    """

    def __init__(self, settings: ClicktuneSettings, *, handle: IndexHandle | None = None) -> None:
        self.settings = settings
        self.alias = settings.collection_alias
        self.feedback = ClickLog.from_settings(settings)
        self.owner = f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.poll_seconds = settings.schedule.request_poll_seconds
        self._handle = handle
        self._handle_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def handle(self) -> IndexHandle:
        # Opened on the first request: in the app's process it shares the store's Qdrant client.
        with self._handle_lock:
            if self._handle is None:
                from clicktune.adapters.qdrant import IndexHandle

                self._handle = IndexHandle.from_settings(self.settings)
            return self._handle

    def start(self) -> RequestServer:
        reap_interrupted(self.feedback, self.alias)
        self._beat()
        for name, target, args in (
            ("clicktune-requests", self._serve, (LEASED_COMMANDS,)),
            ("clicktune-requests-read", self._serve, (READ_COMMANDS,)),
            ("clicktune-requests-beat", self._heartbeat, ()),
        ):
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("clicktune serves requests for alias %r as %s (every %gs)", self.alias, self.owner,
                 self.poll_seconds)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; a request being run finishes first (up to ``timeout``), then the row goes."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        try:
            self.feedback.requests.leave(self.owner)
        except Exception as exc:  # noqa: BLE001 - its heartbeat goes stale by itself
            log.warning("could not remove the loop's heartbeat row (%s: %s)", type(exc).__name__, exc)
        self.feedback.close()

    def serve_once(self, commands: Collection[str]) -> ControlRequest | None:
        """Claim and run the oldest pending request among ``commands``; the request as it ended."""
        request = self.feedback.requests.claim(self.alias, self.owner, commands)
        if request is None:
            return None
        log.info("request %d: %s %s from %s", request.id, request.command, json.dumps(request.arguments),
                 request.submitted_by)
        crash_point("request.claimed")
        answer = execute(request, self.settings, self.handle)
        crash_point("request.ran")
        status = "done" if answer.exit_code == 0 else "failed"
        if not self.feedback.requests.finish(request.id, self.owner, status, answer.model_dump_json()):
            log.warning("request %d was declared interrupted while it ran; its answer is dropped", request.id)
        log.info("request %d: %s (exit code %d)", request.id, status, answer.exit_code)
        return self.feedback.requests.get(request.id)

    def _serve(self, commands: Collection[str]) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                while not self._stop.is_set() and self.serve_once(commands) is not None:
                    pass
            except Exception as exc:  # noqa: BLE001 - the feedback database may blink: poll again
                log.warning("serving requests failed (%s: %s); retrying", type(exc).__name__, exc)

    def _beat(self) -> None:
        self.feedback.requests.beat(self.owner, self.alias, this_host(), os.getpid())

    def _heartbeat(self) -> None:
        while not self._stop.wait(BEAT_SECONDS):
            try:
                self._beat()
                reap_interrupted(self.feedback, self.alias)
                # status's reads are worth nothing once answered; the others are the operator's record
                self.feedback.requests.prune(self.alias, older_than=timedelta(hours=1), commands={"status"})
                self.feedback.requests.prune(self.alias, older_than=KEEP_REQUESTS)
            except Exception as exc:  # noqa: BLE001 - retried at the next beat
                log.warning("request heartbeat failed (%s: %s)", type(exc).__name__, exc)


# The CLI's side ---------------------------------------------------------------------------------

def _say(message: str) -> None:
    print(f"clicktune: {message}", file=sys.stderr, flush=True)


def send(settings: ClicktuneSettings, command: RequestCommand, arguments: dict[str, PlainValue], *,
         timeout: float, why: str) -> Answer:
    """Queue ``command`` for the app's loop, wait up to ``timeout`` seconds and return its answer.

    ``why`` is the reason this process cannot run it itself (the held folder's message); with no
    loop serving, :class:`NoLoopServingError` says both. Progress goes to stderr.
    """
    feedback = ClickLog.from_settings(settings)
    try:
        return _send(feedback, settings.collection_alias, command, arguments, timeout=timeout, why=why)
    finally:
        feedback.close()


def _nobody(alias: str, why: str) -> NoLoopServingError:
    if why.startswith("--via-loop"):
        return NoLoopServingError(
            f"no clicktune loop serves requests for alias {alias!r} (no heartbeat in the feedback database in the "
            f"last {STALE_SECONDS:g}s): start one (`start_background_loop()` in the app, or `clicktune worker`), "
            "or drop --via-loop")
    return NoLoopServingError(
        f"{why.split(';')[0]}, and no clicktune loop serves requests for alias {alias!r} (no heartbeat in the "
        f"feedback database in the last {STALE_SECONDS:g}s): start the loop in that process "
        "(`start_background_loop()`), or stop that process and retry, or run a Qdrant server and set "
        "CLICKTUNE_QDRANT_URL")


def _send(feedback: ClickLog, alias: str, command: RequestCommand, arguments: dict[str, PlainValue], *,
          timeout: float, why: str) -> Answer:
    loops = serving_loops(feedback, alias)
    if not loops:
        raise _nobody(alias, why)
    by = f"{this_host()}:{os.getpid()}"
    request = feedback.requests.submit(alias, command, arguments, submitted_by=by)
    _say(f"Qdrant is held by the app; request {request.id} ({command}) sent to its loop "
         f"({', '.join(b.owner for b in loops)}), waiting up to {timeout:g}s")
    started = last_said = time.monotonic()
    while True:
        current = feedback.requests.get(request.id)
        assert current is not None
        if current.finished:
            return answer_of(current)
        waited = time.monotonic() - started
        beats = feedback.requests.loops(alias, seen_within=STALE_SECONDS)
        if current.status == "running" and current.owner and not alive(current.owner, beats):
            feedback.requests.interrupt(current.id, current.owner, f"interrupted: {current.owner} stopped before "
                                        f"finishing it; not run again (a {command} is not safe to repeat): check "
                                        "`clicktune status`")
            continue
        if current.status == "pending" and not serving_loops(feedback, alias):
            if feedback.requests.cancel(current.id, "no loop served it"):
                raise _nobody(alias, why)
            continue
        if waited > timeout:
            if feedback.requests.cancel(current.id, f"not picked up within {timeout:g}s; cancelled"):
                return Answer(exit_code=EXIT_ERROR, error=f"request {current.id} ({command}) was not picked up "
                              f"within {timeout:g}s (--timeout); it was cancelled and will not run")
            return Answer(exit_code=EXIT_ERROR, error=f"request {current.id} ({command}) still runs in {current.owner} "
                          f"after {timeout:g}s (--timeout); it finishes there and `clicktune status` shows its outcome")
        if time.monotonic() - last_said >= 15:
            last_said = time.monotonic()
            _say(f"request {current.id} {current.status}" + (f" in {current.owner}" if current.owner else "")
                 + f" ({waited:.0f}s)")
        time.sleep(0.25)


def locked_answer(settings: ClicktuneSettings, command: RequestCommand, *, wait: float = 0.0) -> Answer | None:
    """What a leased command answers when the alias's lease is taken (exit 3, as when it runs here), or
    None when it is still free after ``wait`` seconds: a process holding the folder and the lease
    (another `clicktune retrain`) serves no requests, and the operator should hear "locked", not
    "nothing serves"."""
    from clicktune.scheduler.lock import lock_name

    if command not in LEASED_COMMANDS:
        return None
    alias = settings.collection_alias
    deadline = time.monotonic() + wait
    feedback = ClickLog.from_settings(settings)
    try:
        while (holder := feedback.lock_holder(lock_name(alias))) is None and time.monotonic() < deadline:
            time.sleep(0.25)
    finally:
        feedback.close()
    if holder is None:
        return None
    if command == "retrain":
        return Answer(exit_code=EXIT_LOCKED, out=["locked: another retrain holds the lock"])
    return Answer(exit_code=EXIT_LOCKED, err=[f"another process holds the lock of alias {alias!r}; try again later"])


def answer_of(request: ControlRequest) -> Answer:
    """The answer a finished request carries, or the error that says why it has none."""
    data = json.loads(request.outcome or "{}")
    if "exit_code" in data:
        return Answer.model_validate(data)
    reason = data.get("reason") or request.status
    return Answer(exit_code=EXIT_ERROR, error=f"request {request.id} ({request.command}) {request.status}: {reason}")
