"""What a LangChain app imports: embeddings that follow the model registry."""

from clicktune.plugin.embeddings import ClicktuneEmbeddings

__all__ = ["ClicktuneEmbeddings"]
