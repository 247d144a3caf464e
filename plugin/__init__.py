"""What a LangChain app imports: embeddings and a vector store that follow the model registry."""

from clicktune.plugin.embeddings import ClicktuneEmbeddings
from clicktune.plugin.vectorstore import ClicktuneVectorStore

__all__ = ["ClicktuneEmbeddings", "ClicktuneVectorStore"]
