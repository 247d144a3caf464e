"""Embedded Qdrant on Qdrant's own engine (qdrant_edge): HNSW search in-process, in place of local mode.

``edge_client(path)`` returns a genuine ``QdrantClient`` whose engine is an ``EdgeEngine``, so everything
that takes a QdrantClient (langchain-qdrant's ``QdrantVectorStore``, ``AliasedCollections``,
``VersionIndex``, the reindexer, adoption) runs on it unchanged.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client.client_base import QdrantBase

from clicktune.adapters.qdrant.edge.engine import EdgeEngine
from clicktune.adapters.qdrant.edge.space import DEFAULT_MIN_FREE_DISK_MB
from clicktune.adapters.qdrant.errors import EdgeUnsupportedError

__all__ = ["UNSUPPORTED", "EdgeEngine", "edge_client", "is_edge_client"]


def _unsupported(name: str) -> Any:
    def method(self: EdgeEngine, *args: Any, **kwargs: Any) -> Any:
        raise EdgeUnsupportedError(f"{name}: the edge engine does not support it (clicktune's embedded edge "
                                   "engine implements what clicktune and langchain-qdrant call)")
    method.__name__ = name
    return method


#: QdrantBase methods the engine does not implement: each raises EdgeUnsupportedError naming itself.
UNSUPPORTED = sorted(
    name for name, value in vars(QdrantBase).items()
    if callable(value) and not name.startswith("_") and name not in vars(EdgeEngine))
for _name in UNSUPPORTED:
    setattr(EdgeEngine, _name, _unsupported(_name))


def edge_client(path: str | Path, min_free_disk_mb: float = DEFAULT_MIN_FREE_DISK_MB) -> QdrantClient:
    """A ``QdrantClient`` on the edge engine in ``path`` (created if missing); ``":memory:"`` = a temporary folder.

    qdrant-client offers no way to hand ``QdrantClient`` an engine of one's own, so this builds an
    in-memory client (which opens nothing on disk), closes its ``QdrantLocal`` and puts the
    ``EdgeEngine`` in its place in the one private attribute every ``QdrantClient`` method delegates to,
    ``_client`` (the attribute ``serialize_embedded`` in ``adapters/qdrant/client.py`` also relies on).
    The client stays a real ``QdrantClient``: query resolution, inference objects and numpy handling in
    ``QdrantClient`` run as in local mode, and ``is_local_mode`` is true, as it is for local mode.
    ``client.init_options`` still describe an in-memory client: do not rebuild a client from them.
    Only one client may open a folder at a time (the engine holds ``<path>/.lock``). Writes and builds
    are refused with ``DiskFullError`` while the folder's disk has less than ``min_free_disk_mb`` free.
    """
    temporary = str(path) == ":memory:"
    folder = Path(tempfile.mkdtemp(prefix="clicktune-edge-")) if temporary else Path(path).expanduser()
    engine = EdgeEngine(folder, min_free_disk_mb)
    client = QdrantClient(location=":memory:")
    client._client.close()
    client._client = engine
    if temporary:
        def remove() -> None:
            engine.close()
            shutil.rmtree(folder, ignore_errors=True)
        atexit.register(remove)
    return client


def is_edge_client(client: QdrantClient) -> bool:
    """Whether ``client`` runs on the edge engine (a local-mode or server client does not)."""
    return isinstance(getattr(client, "_client", None), EdgeEngine)
