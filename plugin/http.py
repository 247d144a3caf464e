"""An optional HTTP endpoint for browser click beacons (``pip install clicktune[server]``).

``POST /clicks`` takes one click or a list of them as JSON; with a token configured it wants
``Authorization: Bearer <token>``. Bad input gets a 4xx with ``{"error": ..., "detail": ...}`` and
stores nothing.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.errors import FeedbackError, UnknownSearchError

if TYPE_CHECKING:
    from fastapi import FastAPI

MAX_CLICKS_PER_REQUEST = 100


class ClickBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    search_id: Annotated[str, Field(min_length=1, max_length=64)]
    doc_id: Annotated[str, Field(min_length=1, max_length=512)]
    dwell: float | None = None
    grade: int | None = None
    user: Annotated[str | None, Field(max_length=255)] = None


def create_click_app(log: ClickLog, *, token: str | None = None, max_body_bytes: int = 16_384) -> FastAPI:
    """A FastAPI app serving ``POST /clicks`` and ``GET /healthz`` over ``log``."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    app = FastAPI(title="clicktune clicks", version="1")

    def error(status: int, name: str, detail: Any) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": name, "detail": detail})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "ValidationError", [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()
        ])

    @app.middleware("http")
    async def _guard(request: Request, call_next):  # noqa: ANN001, ANN202
        if request.url.path == "/clicks":
            if token is not None:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return error(401, "Unauthorized", "send Authorization: Bearer <token>")
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
                return error(413, "PayloadTooLarge", f"request body over {max_body_bytes} bytes")
            body = await request.body()
            if len(body) > max_body_bytes:
                return error(413, "PayloadTooLarge", f"request body over {max_body_bytes} bytes")
        return await call_next(request)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/clicks")
    def post_clicks(
        body: Annotated[ClickBody | list[ClickBody], Field(union_mode="left_to_right")],
    ) -> JSONResponse:
        clicks = body if isinstance(body, list) else [body]
        if not clicks:
            return error(422, "ValidationError", "send at least one click")
        if len(clicks) > MAX_CLICKS_PER_REQUEST:
            return error(413, "PayloadTooLarge", f"at most {MAX_CLICKS_PER_REQUEST} clicks per request")
        try:
            stored = log.record_clicks([c.model_dump() for c in clicks])
        except UnknownSearchError as exc:
            return error(404, type(exc).__name__, str(exc))
        except FeedbackError as exc:
            return error(422, type(exc).__name__, str(exc))
        return JSONResponse(status_code=201 if any(stored) else 200,
                            content={"stored": sum(stored), "duplicates": len(stored) - sum(stored)})

    return app
