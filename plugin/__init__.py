"""What a LangChain app imports: embeddings and a vector store that follow the model registry, clicks."""

from clicktune.plugin.clicks import record_click, record_clicks, set_default_click_log
from clicktune.plugin.embeddings import ClicktuneEmbeddings
from clicktune.plugin.vectorstore import ClicktuneVectorStore

__all__ = ["ClicktuneEmbeddings", "ClicktuneVectorStore", "record_click", "record_clicks", "set_default_click_log"]
