"""``ClicktuneVectorStore.from_existing_collection``: open a langchain-qdrant collection, adopting it first.

langchain-qdrant's ``QdrantVectorStore.from_existing_collection(collection_name, embedding, ...)`` opens a
collection as it is; clicktune needs that name for its alias, so the first call imports the collection
(``clicktune.adapters.qdrant.adoption``: ids, texts and metadata kept, vectors copied when our model made
them, the name becoming the alias) and every later call just opens the store.
"""

from __future__ import annotations

from typing import Any

from clicktune.adapters.qdrant import ImportReport, import_collection
from clicktune.plugin.embeddings import ClicktuneEmbeddings
from clicktune.plugin.options import check_embeddings


class AdoptExisting:
    """Mixed into ``ClicktuneVectorStore``; ``last_import`` is the report of the import it ran (or found done)."""

    last_import: ImportReport | None = None

    @classmethod
    def from_existing_collection(
        cls,
        collection_name: str,
        embedding: ClicktuneEmbeddings | None = None,
        *,
        content_payload_key: str = "page_content",
        metadata_payload_key: str = "metadata",
        vector_name: str | None = None,
        **store_kwargs: Any,
    ) -> Any:
        """The store over ``collection_name``, imported first if it is still a plain langchain-qdrant collection.

        ``content_payload_key`` / ``metadata_payload_key`` / ``vector_name`` are the ones the collection was
        written with (langchain-qdrant's names; ``vector_name=None`` takes the collection's only dense
        vector). ``store_kwargs`` go to ``ClicktuneVectorStore`` (settings, ``url``, ``path``, ``api_key``,
        ``client``, ...). Run it from one process at a time: ``clicktune import`` also takes the alias's lock.
        """
        check_embeddings(embedding)
        store = cls(embeddings=embedding, collection_name=collection_name, **store_kwargs)
        store.last_import = import_collection(
            store.handle, content_key=content_payload_key, metadata_key=metadata_payload_key,
            vector_name=vector_name, show_progress=store.settings.show_progress())
        return store
