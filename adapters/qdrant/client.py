"""One QdrantClient per location per process.

Embedded Qdrant (``path=``) refuses a second client on the same folder, even in the same process, so
every part of clicktune that needs Qdrant (vector store, reindexer, CLI) asks here and shares one.
``:memory:`` clients are never shared: each is its own database by definition.

qdrant-client's local mode is not thread-safe: a search racing an upsert reads arrays of two sizes
(``operands could not be broadcast``), and its one SQLite connection gets commits from several
threads (``cannot commit - no transaction is active``). A threaded web app shares one store across
its worker threads, so every embedded client clicktune touches is made to take its calls one at a
time (``serialize_embedded``). A server client is left alone: the server is concurrent.
"""

from __future__ import annotations

import atexit
import functools
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client.local.qdrant_local import QdrantLocal

from clicktune.adapters.errors import ConfigurationError
from clicktune.adapters.qdrant.errors import EmbeddedFolderInUseError, is_embedded_lock
from clicktune.adapters.settings import ClicktuneSettings

_clients: dict[str, QdrantClient] = {}
_lock = threading.Lock()


class _SerializedLocal:
    """qdrant-client's local engine behind one re-entrant lock: each call runs alone.

    Local mode answers from Python lists and NumPy arrays in this process, so the lock costs no
    parallelism the GIL would have given (measured in ``benchmarks/embedded_threads.py``). It wraps
    the engine inside the ``QdrantClient`` rather than the client, so the client stays a genuine
    ``QdrantClient`` for langchain-qdrant and for code that checks its type.
    """

    def __init__(self, local: QdrantLocal) -> None:
        self._local = local
        self._call_lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._local, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
            with self._call_lock:
                return attribute(*args, **kwargs)

        return one_at_a_time


def serialize_embedded(client: QdrantClient) -> QdrantClient:
    """Make an embedded (local-mode) client safe to share between threads; idempotent; returns it.

    Applied to clients clicktune creates and to those an app passes in (the store shares it with
    its writers, readers and the reindexer). Reaches one private attribute, ``_client``, because
    qdrant-client offers no hook for this; a server client has no ``QdrantLocal`` there and is
    returned untouched.
    """
    engine = getattr(client, "_client", None)
    if isinstance(engine, QdrantLocal):
        client._client = _SerializedLocal(engine)  # type: ignore[assignment]
    return client


def searches_exactly(client: QdrantClient) -> bool:
    """Is ``client`` qdrant-client's local mode, which ignores search parameters (and warns about them)?"""
    return isinstance(getattr(client, "_client", None), (QdrantLocal, _SerializedLocal))


#: Local mode's marker file in an embedded folder (the edge engine writes ``collections/`` and ``aliases.json``).
LOCAL_MODE_MARKER = "meta.json"


def embedded_engine(settings: ClicktuneSettings) -> str:
    """``"edge"`` or ``"local"``: the setting, with ``auto`` resolved.

    ``auto`` is the edge engine (HNSW, concurrent, a write-ahead log; ``benchmarks/embedded_search.py``),
    except for a folder that local mode already holds data in: that one keeps local mode, so an
    existing home opens as it always did.
    """
    if settings.embedded_engine != "auto":
        return settings.embedded_engine
    path = settings.resolved_qdrant_path
    if path and path != ":memory:" and (Path(path).expanduser() / LOCAL_MODE_MARKER).is_file():
        return "local"
    return "edge"


def embedded_client(path: str, engine: str, *, min_free_disk_mb: float | None = None) -> QdrantClient:
    """A new embedded client on ``engine`` in ``path`` (a folder, or ``":memory:"``).

    ``min_free_disk_mb`` (the edge engine's free-space floor; None = the setting's default) does not
    apply to local mode, which writes through SQLite: a full disk raises there instead of killing.
    """
    if engine == "edge":
        from clicktune.adapters.qdrant.edge import edge_client
        from clicktune.adapters.qdrant.edge.space import DEFAULT_MIN_FREE_DISK_MB

        return edge_client(path, DEFAULT_MIN_FREE_DISK_MB if min_free_disk_mb is None else min_free_disk_mb)
    return serialize_embedded(QdrantClient(":memory:") if path == ":memory:" else QdrantClient(path=path))


def qdrant_client_from_settings(settings: ClicktuneSettings) -> QdrantClient:
    """The process-wide client for the settings' Qdrant (server URL, embedded folder or memory)."""
    if settings.qdrant_url:
        key = f"url:{settings.qdrant_url}"
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        factory = lambda: reachable(lambda: QdrantClient(url=settings.qdrant_url, api_key=api_key),  # noqa: E731
                                    settings.qdrant_url)
    else:
        path = settings.resolved_qdrant_path
        assert path is not None
        engine = embedded_engine(settings)
        if path == ":memory:":
            return embedded_client(":memory:", engine, min_free_disk_mb=settings.min_free_disk_mb)
        resolved = Path(path).expanduser().resolve()
        key = f"path:{resolved}"

        def factory() -> QdrantClient:
            from clicktune.adapters.qdrant.migration import finish_interrupted_migration

            finish_interrupted_migration(resolved)  # a move to the edge engine that died between its renames
            settings.file_modes.make_folder(resolved)  # the engines' files inside follow the umask
            try:
                return embedded_client(str(resolved), engine, min_free_disk_mb=settings.min_free_disk_mb)
            except Exception as exc:
                if not is_embedded_lock(exc):
                    raise
                raise EmbeddedFolderInUseError(
                    f"the embedded Qdrant folder {resolved} is open in another process (an app, a worker or "
                    "another clicktune command); stop that process and retry, or run a Qdrant server and set "
                    "CLICKTUNE_QDRANT_URL", str(resolved)) from exc

    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = factory()
        return client


def reachable(make: Callable[[], QdrantClient], url: str | None) -> QdrantClient:
    """The client ``make`` returns, once its server has answered one request; else
    :class:`ConfigurationError`, in one line.

    qdrant-client connects lazily: a wrong URL used to pass construction and fail at the first
    search or write with the HTTP library's exception and its traceback. One listing of the
    collections here, once per process and location (the client is shared), says at the door what
    to fix. The client's version check warns (several lines) when the server does not answer: its
    warnings are held until the server has answered, and dropped with the error otherwise.
    """
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    with warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("always")
        client = make()
    try:
        client.get_collections()
    except ResponseHandlingException as exc:
        client.close()
        reason = " ".join(str(getattr(exc, "source", None) or exc).split()) or type(exc).__name__
        raise ConfigurationError(
            f"cannot reach Qdrant at {url} ({reason}): check CLICKTUNE_QDRANT_URL (qdrant_url=, url=) and that "
            "the server is running") from None
    except UnexpectedResponse as exc:
        if exc.status_code not in (401, 403):
            raise
        client.close()
        raise ConfigurationError(
            f"Qdrant at {url} answered {exc.status_code} {exc.reason_phrase}: check CLICKTUNE_QDRANT_API_KEY "
            "(qdrant_api_key=, api_key=)") from None
    for warning in held:  # the server answered: a version mismatch is worth its warning
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return client


def close_shared_clients() -> None:
    """Close every shared client (tests and CLI exit); embedded folders become free for others."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


# Embedded clients flush on close; closing them before interpreter teardown avoids qdrant-client's
# noisy "sys.meta_path is None" error from __del__.
atexit.register(close_shared_clients)
