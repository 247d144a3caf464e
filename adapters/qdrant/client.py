"""One QdrantClient per location per process.

Embedded Qdrant (``path=``) refuses a second client on the same folder, even in the same process, so
every part of clicktune that needs Qdrant (vector store, reindexer, CLI) asks here and shares one.
``:memory:`` clients are never shared: each is its own database by definition.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path

from qdrant_client import QdrantClient

from clicktune.adapters.settings import ClicktuneSettings

_clients: dict[str, QdrantClient] = {}
_lock = threading.Lock()


def qdrant_client_from_settings(settings: ClicktuneSettings) -> QdrantClient:
    """The process-wide client for the settings' Qdrant (server URL, embedded folder or memory)."""
    if settings.qdrant_url:
        key = f"url:{settings.qdrant_url}"
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        factory = lambda: QdrantClient(url=settings.qdrant_url, api_key=api_key)  # noqa: E731
    else:
        path = settings.resolved_qdrant_path
        assert path is not None
        if path == ":memory:":
            return QdrantClient(":memory:")
        resolved = Path(path).expanduser().resolve()
        key = f"path:{resolved}"

        def factory() -> QdrantClient:
            resolved.mkdir(parents=True, exist_ok=True)
            return QdrantClient(path=str(resolved))

    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = factory()
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
