"""What the ``clicktune`` command says when it fails: one line that names what to fix.

The command turns the errors an operator can fix (clicktune's own, a bad setting, a busy embedded
Qdrant folder, a Qdrant server or feedback database it cannot reach) into ``clicktune: error: ...``
and exit code 1; anything else is a bug and keeps its traceback. ``--debug`` (or ``CLICKTUNE_DEBUG=1``)
shows the traceback of every error.

This module is imported by the commands, not with ``clicktune.scheduler.cli``, so that ``clicktune
--help`` loads neither pydantic nor clicktune's adapters.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from clicktune.adapters import ClicktuneError, ClicktuneSettings

#: Settings the command line can also set, and the option that does.
_OPTIONS = {"home": "--home", "collection_alias": "--alias"}


class NothingHereError(ClicktuneError):
    """A read-only command found no clicktune setup where the settings point (a misspelled or empty
    home): it says so rather than print empty tables, and creates nothing there."""


class NothingToScoreError(ClicktuneError):
    """``clicktune eval`` has no query to score: an nDCG of 0.0 over 0 queries would read as a verdict."""


def _squash(text: str) -> str:
    return " ".join(str(text).split())


def _settings_message(exc: ValidationError) -> str:
    """Each problem under the name the operator set: ``CLICKTUNE_TRAIN_EPOCHS``, never ``training``."""
    from clicktune.adapters.settings import setting_problems

    problems = []
    for problem in setting_problems(exc):
        options = [_OPTIONS[name] for name in problem.names if name in _OPTIONS]
        where = f"{' or '.join(options)} or the environment or .env" if options else "the environment or .env"
        problems.append(f"{problem.as_variables()} (from {where}): {problem.message}"
                        if problem.settings else problem.message)
    return "invalid setting " + "; ".join(problems)


def _is_embedded_lock(exc: BaseException) -> bool:
    if isinstance(exc, RuntimeError) and "already accessed by another instance" in str(exc):
        return True
    return any(cls.__module__.split(".")[0] == "portalocker" for cls in type(exc).__mro__)


def _embedded_lock_message(exc: BaseException, settings: ClicktuneSettings | None) -> str:
    match = re.search(r"Storage folder (.+?) is already accessed", str(exc))
    folder = match.group(1) if match else (settings.resolved_qdrant_path if settings else "of embedded Qdrant")
    return (f"the embedded Qdrant folder {folder} is open in another process (an app, a worker or another "
            f"clicktune command); stop that process and retry, or run a Qdrant server and set CLICKTUNE_QDRANT_URL")


def _qdrant_message(exc: BaseException, settings: ClicktuneSettings | None) -> str:
    from qdrant_client.http.exceptions import UnexpectedResponse

    where = settings.qdrant_url if settings and settings.qdrant_url else "the Qdrant server"
    if isinstance(exc, UnexpectedResponse):
        hint = "check CLICKTUNE_QDRANT_API_KEY" if exc.status_code in (401, 403) else "check CLICKTUNE_QDRANT_URL"
        return f"Qdrant at {where} answered {exc.status_code} {exc.reason_phrase}: {hint}"
    reason = _squash(getattr(exc, "source", None) or exc) or type(exc).__name__
    return f"cannot reach Qdrant at {where} ({reason}): check CLICKTUNE_QDRANT_URL and that the server is running"


def _database_message(exc: BaseException, settings: ClicktuneSettings | None) -> str:
    from sqlalchemy.engine import make_url

    url = "the feedback database"
    if settings is not None:
        try:
            url = make_url(settings.resolved_feedback_url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - the URL is only shown, a bad one is reported by the driver
            url = "the feedback database"
    orig = getattr(exc, "orig", None) or exc
    lines = [line for line in str(orig).splitlines() if line.strip()]
    reason = _squash(lines[0]) if lines else type(orig).__name__
    return (f"cannot use the feedback database {url} ({reason}): check CLICKTUNE_FEEDBACK_URL and that the "
            f"database is running and reachable")


def _one(exc: BaseException, settings: ClicktuneSettings | None) -> str | None:
    if isinstance(exc, ClicktuneError):
        return _squash(exc)
    if isinstance(exc, ValidationError) and exc.title == ClicktuneSettings.__name__:
        return _settings_message(exc)
    if _is_embedded_lock(exc):
        return _embedded_lock_message(exc, settings)
    # A library's error means the library is loaded: never import one (a second, for the Qdrant client)
    # only to find that an error is not its own.
    if "qdrant_client" in sys.modules:
        from qdrant_client.http.exceptions import ApiException

        if isinstance(exc, ApiException):
            return _qdrant_message(exc, settings)
    if "httpx" in sys.modules:
        import httpx

        if isinstance(exc, httpx.TransportError):
            return _qdrant_message(exc, settings)
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import InterfaceError, OperationalError

        if isinstance(exc, (OperationalError, InterfaceError)):
            return _database_message(exc, settings)
    return None


def error_line(exc: BaseException, settings: ClicktuneSettings | None) -> str | None:
    """``exc`` (or the error it was raised from) as one line for the operator; None for a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        message = _one(current, settings)
        if message is not None:
            return message
        current = current.__cause__
    return None


class _NoTraceback(logging.Formatter):
    """Log records as one line each: the command's own error line says the rest (--debug shows all)."""

    def formatException(self, ei) -> str:  # noqa: ANN001, N802 - logging's signature
        return ""

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's signature
        return ""


def configure_logging(debug: bool, level: str = "INFO") -> None:
    """clicktune's own loggers at ``level`` (the ``log_level`` setting), every other library's at WARNING;
    ``--debug`` puts everything at DEBUG, whatever ``level`` says.

    INFO is where the long steps (retrain, reindex) say what they are doing when no TTY shows a
    progress bar (cron, a worker, CI). Other libraries stay at WARNING because some log routine
    work at INFO (httpx logs every request to a Qdrant server).
    """
    fmt = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(format=fmt)  # a stderr handler, unless the process configured logging itself
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("clicktune").setLevel(logging.DEBUG if debug else level)
    if not debug:
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:
                handler.setFormatter(_NoTraceback(fmt))


class _DropReported(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None


@contextmanager
def reported_here(logger: str, debug: bool) -> Iterator[None]:
    """Mute ``logger``'s failure records (those with a traceback) while the command reports them itself."""
    if debug:
        yield
        return
    muted = _DropReported()
    logging.getLogger(logger).addFilter(muted)
    try:
        yield
    finally:
        logging.getLogger(logger).removeFilter(muted)
