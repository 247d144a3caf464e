"""Writes are all or nothing, and every id the store accepts can be shown, logged and clicked.

``add_texts`` checks the whole call (texts, metadatas, ids) before it writes anything, so a bad item
in a later batch leaves no earlier batch behind; and it takes only document ids the click log can
hold, on SQLite and PostgreSQL alike (``adapters.limits``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.documents import Document

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.errors import InvalidDocumentsError, InvalidQueryError, MalformedIdError
from clicktune.adapters.limits import MAX_DOC_ID_LENGTH, MAX_SESSION_ID_LENGTH, MAX_USER_ID_LENGTH
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine

N = 70  # more than one batch of 64: the bad item sits in the second batch
BAD = 66


@pytest.fixture
def store(settings: ClicktuneSettings) -> Iterator[ClicktuneVectorStore]:
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        store.add_texts(["already here"], ids=["kept"])
        yield store


def _points(store: ClicktuneVectorStore) -> int:
    return store.client.count(store.live().collection, exact=True).count


def _call(texts=None, metadatas=None, ids=None) -> dict:
    texts = texts or [f"text number {i}" for i in range(N)]
    return {"texts": texts, "metadatas": metadatas, "ids": ids}


def _with(bad, *, fill, at: int = BAD, n: int = N) -> list:
    items = [fill(i) for i in range(n)]
    items[at] = bad
    return items


@pytest.mark.parametrize(
    "call, error, message",
    [
        (_call(texts=_with(None, fill=lambda i: f"text {i}")), InvalidDocumentsError, f"text {BAD} is None"),
        (_call(texts=_with(7, fill=lambda i: f"text {i}")), InvalidDocumentsError, f"text {BAD} is of type int, not str"),
        (_call(metadatas=_with("oops", fill=lambda i: {"i": i})), InvalidDocumentsError, f"metadata {BAD} is of type str, not a dict"),
        (_call(metadatas=[{}] * (N - 1)), InvalidDocumentsError, f"{N} texts but {N - 1} metadatas"),
        (_call(ids=[f"d{i}" for i in range(N + 1)]), InvalidDocumentsError, f"{N} texts but {N + 1} ids"),
        (_call(ids=_with("", fill=lambda i: f"d{i}")), MalformedIdError, "non-empty"),
        (_call(ids=_with("   ", fill=lambda i: f"d{i}")), MalformedIdError, "non-empty"),
        (_call(ids=_with("x" * (MAX_DOC_ID_LENGTH + 1), fill=lambda i: f"d{i}")), MalformedIdError,
         f"at most {MAX_DOC_ID_LENGTH} characters"),
        (_call(ids=_with(7, fill=lambda i: f"d{i}")), MalformedIdError, "pass ids as strings"),
    ],
    ids=["none-text", "int-text", "str-metadata", "short-metadatas", "long-ids", "empty-id", "blank-id",
         "overlong-id", "int-id"],
)
def test_add_texts_with_one_bad_item_in_a_later_batch_writes_nothing(
    store: ClicktuneVectorStore, call: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        store.add_texts(call["texts"], call["metadatas"], ids=call["ids"], batch_size=64)
    assert _points(store) == 1  # only "kept": not one point of the first batch
    assert [d.id for d in store.get_by_ids(["d0", "kept"])] == ["kept"]


def test_add_documents_with_an_unclickable_id_in_a_later_batch_writes_nothing(store: ClicktuneVectorStore) -> None:
    docs = [Document(page_content=f"text {i}", id=f"d{i}") for i in range(N)]
    docs[BAD].id = "x" * (MAX_DOC_ID_LENGTH + 1)
    with pytest.raises(MalformedIdError, match=rf"ids\[{BAD}\] .* must be a non-empty string"):
        store.add_documents(docs)
    assert _points(store) == 1


async def test_aadd_documents_with_an_unclickable_id_in_a_later_batch_writes_nothing(
    store: ClicktuneVectorStore,
) -> None:
    docs = [Document(page_content=f"text {i}", id=f"d{i}") for i in range(N)]
    docs[BAD].id = " "
    with pytest.raises(MalformedIdError, match="non-empty"):
        await store.aadd_documents(docs)
    assert _points(store) == 1


@pytest.fixture
def logged_store(settings: ClicktuneSettings, db_url: str) -> Iterator[ClicktuneVectorStore]:
    """A store whose click log is ``db_url``: real SQLite, then real PostgreSQL."""
    feedback = ClickLog(db_url)
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        yield ClicktuneVectorStore(settings, embeddings=emb, feedback=feedback)
    feedback.close()


def test_an_id_of_exactly_the_limit_is_added_found_and_clicked(logged_store: ClicktuneVectorStore) -> None:
    longest = "d" * MAX_DOC_ID_LENGTH
    logged_store.add_texts(["Vitamin D supplements lower the risk of hip fractures.", "Rates went up."],
                           ids=[longest, "rates"])
    user, session = "u" * MAX_USER_ID_LENGTH, "s" * MAX_SESSION_ID_LENGTH
    top = logged_store.similarity_search("vitamin D and bones", k=2, user_id=user, session_id=session)[0]
    assert top.id == longest
    assert logged_store.impression_logger.failures == 0
    impression = logged_store.feedback.get_impression(top.metadata["clicktune"]["search_id"])
    assert impression.results[0].doc_id == longest and impression.user_id == user
    assert logged_store.record_click(top.metadata["clicktune"]["search_id"], longest, user=user) is True
    (event,) = list(logged_store.feedback.iter_feedback())
    assert [(c.doc_id, c.user_id) for c in event.clicks] == [(longest, user)]


def test_an_overlong_id_is_refused_before_anything_is_indexed_or_logged(
    logged_store: ClicktuneVectorStore,
) -> None:
    logged_store.add_texts(["Rates went up."], ids=["rates"])
    with pytest.raises(MalformedIdError, match=f"at most {MAX_DOC_ID_LENGTH} characters"):
        logged_store.add_texts(["Vitamin D lowers fracture risk."], ids=["d" * (MAX_DOC_ID_LENGTH + 1)])
    assert _points(logged_store) == 1
    assert logged_store.feedback.stats() == {"impressions": 0, "clicks": 0}


@pytest.mark.parametrize("who", ["user_id", "session_id"])
def test_a_search_for_an_overlong_user_or_session_is_refused_and_logs_nothing(
    logged_store: ClicktuneVectorStore, who: str
) -> None:
    logged_store.add_texts(["Rates went up."], ids=["rates"])
    with pytest.raises(MalformedIdError, match="longer than 255 characters"):
        logged_store.similarity_search("rates", k=1, **{who: "u" * 256})
    assert logged_store.feedback.stats() == {"impressions": 0, "clicks": 0}
    assert logged_store.impression_logger.failures == 0


def test_a_click_by_an_overlong_user_is_refused_with_a_feedback_error(logged_store: ClicktuneVectorStore) -> None:
    logged_store.add_texts(["Rates went up."], ids=["rates"])
    (doc,) = logged_store.similarity_search("rates", k=1)
    with pytest.raises(MalformedIdError, match="user id 'uuuu"):
        logged_store.record_click(doc.metadata["clicktune"]["search_id"], doc.id, user="u" * (MAX_USER_ID_LENGTH + 1))
    assert logged_store.feedback.count_clicks() == 0


@pytest.mark.parametrize("bad", ["a\x00b", "caf\udce9"], ids=["nul", "lone-surrogate"])
def test_ids_users_sessions_and_queries_postgresql_cannot_store_are_refused_alike(
    logged_store: ClicktuneVectorStore, bad: str
) -> None:
    """Reliability issue, item 6: a NUL passed every check and then failed every impression on PostgreSQL
    (never clickable); SQLite stored it. Refused at the door on both, with nothing indexed or logged."""
    logged_store.add_texts(["Rates went up."], ids=["rates"])
    with pytest.raises(MalformedIdError, match=r"ids\[1\] .* holds an? (NUL|unpaired)"):
        logged_store.add_texts(["Vitamin D lowers fracture risk.", "again"], ids=["vit", bad])
    for who in ("user_id", "session_id"):
        with pytest.raises(MalformedIdError, match=f"{who.replace('_', ' ')} .* holds"):
            logged_store.similarity_search("rates", k=1, **{who: bad})
    with pytest.raises(InvalidQueryError, match="the query .* holds .*remove it from the query"):
        logged_store.similarity_search(f"rates {bad}", k=1)
    with pytest.raises(InvalidQueryError):
        logged_store.max_marginal_relevance_search(bad, k=1)
    (doc,) = logged_store.similarity_search("rates", k=1)
    with pytest.raises(MalformedIdError, match="user id .* holds"):
        logged_store.record_click(doc.metadata["clicktune"]["search_id"], doc.id, user=bad)
    assert _points(logged_store) == 1
    assert logged_store.feedback.stats() == {"impressions": 1, "clicks": 0}
    assert logged_store.impression_logger.failures == 0
