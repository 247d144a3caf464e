"""How a document is laid out in a Qdrant point: payload keys and the point id of a caller id.

Kept apart from ``documents`` (which is LangChain's vector store) so that the index API and
``clicktune status`` can read points without importing LangChain.
"""

from __future__ import annotations

import uuid

#: Fixed namespace so every process maps a caller id to the same point id.
POINT_ID_NAMESPACE = uuid.UUID("6f0e4c4e-2b7a-5c1d-9a57-3c1f0b9e7a11")
#: The caller's id, kept in the payload (point ids are UUID5s of it).
DOC_ID_KEY = "doc_id"
#: langchain-qdrant's keys for the text and the metadata (``QdrantVectorStore.CONTENT_KEY`` / ``METADATA_KEY``).
CONTENT_KEY = "page_content"
METADATA_KEY = "metadata"


def point_id(doc_id: str | int) -> str:
    return str(uuid.uuid5(POINT_ID_NAMESPACE, str(doc_id)))
