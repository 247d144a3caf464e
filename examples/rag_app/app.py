"""A small RAG web app on clicktune: ask a question, read the sources, click one; the click is logged.

Run it (it needs the ``server`` extra, and ``ops`` for ``/dashboard``: ``pip install -e '.[server,models,ops]'``)::

    python examples/rag_app/app.py --home /tmp/rag-home          # http://127.0.0.1:8000
    uvicorn --factory app:create_app --app-dir examples/rag_app  # home from CLICKTUNE_HOME

On first start it indexes 30 SciFact abstracts (the bundled copy in ``scheduler/data/scifact``, the
documents cited by the first test claims) into the home's embedded Qdrant; later starts find them
and index nothing. The page offers those claims as sample questions.

What each piece shows:

- ``POST /ask`` runs an LCEL chain, ``{context: retriever, question} | assign(answer=prompt | model)``,
  over ``ClicktuneVectorStore.as_retriever``, so every question is one logged search (an impression).
  It answers with the text and the sources, each with its ``doc_id`` and the ``search_id`` that
  clicktune put in ``metadata["clicktune"]``: the two things a click must name.
- The chat model is langchain-core's ``FakeListChatModel`` (a fixed reply), so the app runs offline
  and with no key. ``RAG_APP_CHAT_MODEL=module:Class`` (e.g. ``langchain_openai:ChatOpenAI``) with
  ``RAG_APP_CHAT_MODEL_KWARGS='{"model": "..."}'`` uses any installed LangChain chat model instead.
  (Not ``CLICKTUNE_*``: clicktune refuses environment variables of its prefix that it does not know.)
- ``create_click_app(store.feedback)`` is mounted at ``/beacon``, so clicks go to ``POST /beacon/clicks``
  in the same click log the searches were logged to.
- ``start_background_loop(store.settings)`` runs clicktune's loop in the app: the retrain schedule,
  and the commands an operator types in another shell (``clicktune status``, ``retrain``,
  ``rollback``, ...), which cannot open the embedded Qdrant folder the app holds and so are sent to
  this loop through the feedback database. ``RAG_APP_LOOP=0`` leaves it out.
- ``GET /`` (``static/index.html``) shows the sources as links to ``/doc/<id>``. Clicking one calls
  ``navigator.sendBeacon("beacon/clicks", JSON)`` and follows the link: a beacon is queued by the
  browser and still sent after the page is left, which is why it, not ``fetch``, reports clicks.
- ``create_observability_app(store)`` is mounted at the root after the app's routes: ``GET /metrics``
  (Prometheus) and ``GET /dashboard`` (the loop's state as one page).

**The click endpoint has no token here, on purpose.** ``navigator.sendBeacon`` cannot set request
headers, so it cannot send the ``Authorization: Bearer`` that ``create_click_app(token=...)`` checks;
a token in the page would be readable by anyone who can load the page anyway. What guards the open
endpoint instead is the click log itself: a click is stored only for a search that was logged, a
document that search showed, within the click window (7 days), once per (search, document); a search
id is a random UUID that only the browser that asked has. So a stranger cannot invent clicks, only
replay the clicks of searches they made themselves. The app listens on 127.0.0.1 by default. In
production put the click route behind the app's own session (cookies do travel with a same-origin
beacon) or rate-limit it per client; a bearer token suits server-to-server click reporting, not beacons.
"""


import argparse
import html
import importlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableParallel, RunnablePassthrough
from pydantic import BaseModel, Field

from clicktune.plugin import ANNOTATIONS_KEY, ClicktuneVectorStore
from clicktune.plugin.http import create_click_app
from clicktune.plugin.observability import create_observability_app
from clicktune.scheduler import start_background_loop
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset

STATIC = Path(__file__).resolve().parent / "static"
CLICK_MOUNT = "/beacon"  # POST /beacon/clicks; the page uses the relative "beacon/clicks"
N_DOCUMENTS = 30
N_SOURCES = 4
FAKE_ANSWER = ("(This is the example's offline fake chat model; set RAG_APP_CHAT_MODEL to use a real "
               "one.) The sources below are what the retriever found for your question: open the one "
               "that answers it, and that click becomes training data for the next model.")
PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Answer the question from the sources only, in two or three sentences. Cite sources "
               "by their [id]. If they do not answer it, say so.\n\nSources:\n{sources}"),
    ("human", "{question}"),
])


class AskBody(BaseModel):
    question: str = Field(min_length=1, max_length=1000)


class Source(BaseModel):
    doc_id: str
    search_id: str
    rank: int
    model_version: str
    title: str
    snippet: str


class Answer(BaseModel):
    question: str
    answer: str
    sources: list[Source]


def bundled_corpus(n: int = N_DOCUMENTS) -> tuple[list[Document], list[str]]:
    """``n`` SciFact abstracts and the test claims they answer.

    Taking the documents cited by the first test claims (rather than the first ``n`` of the corpus)
    means the sample questions have their answers in the index, so a click on the right source is
    possible and the demo shows retrieval doing its job.
    """
    data = BeirDataset.load(BUNDLED_SCIFACT, splits=("test",))
    chosen: dict[str, Document] = {}
    questions: list[str] = []
    for qid, relevant in data.qrels["test"].items():
        new = [d for d in relevant if d in data.corpus and d not in chosen]
        if len(chosen) + len(new) > n:
            continue  # a later claim may cite fewer documents and still fit
        for doc_id in new:
            doc = data.corpus[doc_id]
            chosen[doc_id] = Document(id=doc_id, page_content=doc.content, metadata={"title": doc.title})
        questions.append(data.queries[qid])
        if len(chosen) == n:
            break
    return list(chosen.values()), questions


def index_once(store: ClicktuneVectorStore, docs: list[Document]) -> int:
    """Add ``docs`` unless they are all there already; returns how many were written.

    Point ids are derived from the document ids, so a rerun after a partial first start overwrites
    rather than duplicates; checking first only saves re-embedding on every start.
    """
    ids = [d.id for d in docs if d.id is not None]
    if len(store.get_by_ids(ids)) == len(ids):
        return 0
    store.add_documents(docs, ids=ids)
    return len(docs)


def chat_model_from_env() -> BaseChatModel:
    """``RAG_APP_CHAT_MODEL=module:Class`` (+ JSON ``RAG_APP_CHAT_MODEL_KWARGS``), else the fake model.

    ``module:Class`` rather than ``provider:model`` so that any installed LangChain integration works
    without the ``langchain`` package's ``init_chat_model``.
    """
    spec = os.environ.get("RAG_APP_CHAT_MODEL", "").strip()
    if not spec:
        return FakeListChatModel(responses=[FAKE_ANSWER])
    module, _, name = spec.partition(":")
    if not name:
        raise SystemExit(f"RAG_APP_CHAT_MODEL={spec!r}: expected module:Class, e.g. langchain_openai:ChatOpenAI")
    kwargs = json.loads(os.environ.get("RAG_APP_CHAT_MODEL_KWARGS") or "{}")
    return getattr(importlib.import_module(module), name)(**kwargs)


def format_sources(docs: list[Document]) -> str:
    return "\n\n".join(f"[{d.id}] {d.page_content}" for d in docs)


def build_chain(store: ClicktuneVectorStore, model: BaseChatModel, k: int = N_SOURCES) -> Runnable:
    """question -> ``{"context": [Document], "question": str, "answer": str}``.

    The retrieved documents stay in the output (``RunnableParallel`` then ``assign``) instead of
    being consumed by the prompt, because the page needs them, with their clicktune annotations,
    to show the sources and report clicks on them.
    """
    retriever = store.as_retriever(search_kwargs={"k": k})
    answer = (RunnablePassthrough.assign(sources=lambda x: format_sources(x["context"]))
              | PROMPT | model | StrOutputParser())
    return RunnableParallel(context=retriever, question=RunnablePassthrough()).assign(answer=answer)


def title_and_body(doc: Document) -> tuple[str, str]:
    """The title and the abstract apart: the indexed text is BEIR's "title. body", which is what
    retrieval should see, but a page that shows the title as the link need not repeat it."""
    title = str(doc.metadata.get("title") or "")
    text = doc.page_content
    if title and text.startswith(title):
        text = text[len(title):].lstrip(". ")
    return title or str(doc.id), text


def to_source(doc: Document) -> Source:
    """The fields a click needs (doc id, search id) and what the page shows, from one result."""
    notes = doc.metadata[ANNOTATIONS_KEY]
    title, text = title_and_body(doc)
    return Source(doc_id=str(doc.id), search_id=str(notes["search_id"]), rank=int(notes["rank"]),
                  model_version=str(notes["model_version"]), title=title,
                  snippet=text[:280] + ("…" if len(text) > 280 else ""))


def create_app(home: str | os.PathLike[str] | None = None, *, model: BaseChatModel | None = None) -> FastAPI:
    """The app; the store is opened (and the corpus indexed on first start) when it starts serving.

    Opening the store in the lifespan, not here, keeps building the app free of side effects: no
    model loaded, no Qdrant folder locked, no hot-reload watcher started until it really runs, and
    the watcher is stopped when it stops. ``home=None`` takes clicktune's settings (``CLICKTUNE_HOME``,
    default ``./.clicktune``).
    """
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = ClicktuneVectorStore(home=str(home)) if home is not None else ClicktuneVectorStore()
        docs, questions = bundled_corpus()
        index_once(store, docs)
        app.state.store = store
        app.state.questions = questions
        app.state.chain = build_chain(store, model or chat_model_from_env())
        # The store's own click log: searches and clicks in one database, so a click can be checked
        # against the search that showed the document.
        app.state.click_app = create_click_app(store.feedback, docs=False)
        app.state.observability = create_observability_app(store)  # GET /metrics and /dashboard
        # The loop in the app's process: embedded Qdrant admits this process only, so the retrain
        # schedule and the operator's commands run here.
        loop = start_background_loop(store.settings) if os.environ.get("RAG_APP_LOOP", "1") != "0" else None
        try:
            yield
        finally:
            if loop is not None:
                loop.shutdown(wait=False)
            store.embeddings.close()

    app = FastAPI(title="clicktune RAG example", lifespan=lifespan)

    async def clicks(scope: Any, receive: Any, send: Any) -> None:
        """Mounted now, served by the click app the lifespan builds (it needs the store's click log)."""
        await app.state.click_app(scope, receive, send)

    app.mount(CLICK_MOUNT, clicks)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/questions")
    def questions() -> list[str]:
        """Sample questions whose answers are in the index."""
        return app.state.questions[:6]

    # A plain def: the chain embeds the query and searches synchronously, so FastAPI runs it in a thread.
    @app.post("/ask")
    def ask(body: AskBody) -> Answer:
        out = app.state.chain.invoke(body.question)
        return Answer(question=body.question, answer=out["answer"], sources=[to_source(d) for d in out["context"]])

    @app.get("/doc/{doc_id}", response_class=HTMLResponse)
    def document(doc_id: str) -> str:
        """Where a source link leads: the abstract itself."""
        found = app.state.store.get_by_ids([doc_id])
        if not found:
            raise HTTPException(404, f"no document {doc_id!r}")
        title, text = (html.escape(part) for part in title_and_body(found[0]))
        return (f"<!doctype html><meta charset=utf-8><title>{title}</title>"
                "<body style='font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto'>"
                f"<p><a href='../'>&larr; back</a></p><h1 id=title>{title}</h1><p id=text>{text}</p>")

    async def observability(scope: Any, receive: Any, send: Any) -> None:
        await app.state.observability(scope, receive, send)

    # Mounted last, at the root: /metrics and /dashboard, after every route of the app's own.
    app.mount("/", observability)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="clicktune home (default: CLICKTUNE_HOME or ./.clicktune)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(create_app(args.home), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
