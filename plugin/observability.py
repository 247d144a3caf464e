"""``/metrics`` and ``/dashboard`` for the app's process: one mountable ASGI app (``pip install clicktune[server]``).

``create_observability_app(store)`` serves, over the store's click log and model registry:

- ``GET /metrics``: Prometheus exposition by ``prometheus-client`` (its ``make_asgi_app``, which also
  speaks OpenMetrics and gzip when the scraper asks): this process's counters (searches, clicks,
  latency...) and the state read from the feedback database at scrape time (click-through by version,
  the challenger phase, the loop's runs, the live version). Names: docs/ARCHITECTURE.md, Observability.
- ``GET /dashboard``: the same state as one HTML page with its charts inline (no script, no network).

Mount it where the app wants it: ``app.mount("/ops", create_observability_app(store))`` serves
``/ops/metrics`` and ``/ops/dashboard``; mounted at ``/`` after the app's own routes (as the example app
does) they are ``/metrics`` and ``/dashboard``. ``/metrics`` is an exact route, not a mount, so a
scraper gets the page itself rather than a redirect to ``/metrics/``. Neither route takes a token: put
them behind the app's own auth, or on a port only the scraper reaches, when the versions' names and
verdicts are not for everyone (they reveal no query, document or user).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clicktune.adapters.observability.metrics import metrics_registry
from clicktune.adapters.observability.state import StateReader

if TYPE_CHECKING:
    from fastapi import FastAPI

    from clicktune.plugin.vectorstore import ClicktuneVectorStore


class _ASGIEndpoint:
    """An ASGI app as a route's endpoint: Starlette serves a non-function endpoint as ASGI as is."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def state_reader(store: ClicktuneVectorStore) -> StateReader:
    """What the store's alias looks like in its feedback database and registry."""
    return StateReader(store.feedback, store.registry, store.settings, alias=store.alias)


def create_observability_app(store: ClicktuneVectorStore, *, cache_seconds: float = 10.0) -> FastAPI:
    """A FastAPI app with ``GET /metrics`` and ``GET /dashboard`` for ``store``'s alias.

    ``cache_seconds``: how long one read of the feedback database serves ``/metrics`` (the counters are
    always current); the dashboard reads afresh on every request.
    """
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse
    from prometheus_client import make_asgi_app

    reader = state_reader(store)
    app = FastAPI(title="clicktune observability", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_route("/metrics", _ASGIEndpoint(make_asgi_app(metrics_registry(reader, cache_seconds=cache_seconds))),
                  methods=["GET"], include_in_schema=False)

    # A plain def: reading the database and rendering the charts is blocking work, run in a thread.
    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard() -> HTMLResponse:
        try:
            from clicktune.adapters.observability.dashboard import DashboardData, render_dashboard
        except ImportError as exc:  # the ops extra is not installed: say so, rather than a bare 500
            return HTMLResponse(f"the dashboard needs the ops extra ({exc.name} is missing): "
                                "pip install 'clicktune[ops]'", status_code=501, media_type="text/plain")
        return HTMLResponse(render_dashboard(DashboardData.read(reader)))

    return app
