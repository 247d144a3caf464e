"""An optional HTTP endpoint for browser click beacons (``pip install clicktune[server]``).

``POST /clicks`` takes one click or a list of them as JSON, each a ``ClickInput``
(``adapters/clicklog/clicks.py``: the same model and validation as ``record_click``); with a token
configured it wants ``Authorization: Bearer <token>``. Bad input gets a 4xx with
``{"error": ..., "detail": ...}`` and stores nothing: a click that is not shaped like one (a field
missing or unknown) is a 422 ``ValidationError`` listing each problem; a bad value is a 422 named
after the error ``record_click`` raises for it (``MalformedIdError``, ``InvalidDwellError``, ...);
an unknown search is a 404. ``GET /healthz`` is always open: it is a liveness probe and reveals nothing.

Auth and the body-size limit live on the route (a FastAPI security dependency and a capped read of
the request stream), not in a middleware matching ``request.url.path``: a path check misses when the
app is mounted (``main.mount("/beacon", app)``) or served behind a ``root_path``, and a middleware
that calls ``request.body()`` buffers a chunked upload whole before it can refuse it.

API docs: ``/openapi.json``, ``/docs`` and ``/redoc`` are served by default only when no token is set.
With a token they are off by default, so that nothing but the liveness probe answers without it;
``docs=True`` then serves ``/openapi.json`` behind the same bearer token and no browser UI, since
Swagger UI fetches the schema without the token.
"""

import hmac
import json
from typing import TYPE_CHECKING, Annotated, Any

from clicktune.adapters.clicklog import ClickInput, ClickLog
from clicktune.adapters.errors import FeedbackError, InvalidClickError, UnknownSearchError

if TYPE_CHECKING:
    from fastapi import FastAPI

MAX_CLICKS_PER_REQUEST = 100


class ClickHTTPError(Exception):
    """A refusal carrying its status and the ``{"error", "detail"}`` body, raised from the route or
    its dependencies and rendered by the app's own handler, so it works however the app is mounted."""

    def __init__(self, status: int, error: str, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}")
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def decode_clicks(raw: bytes) -> tuple[list[Any], bool]:
    """Decode a ``POST /clicks`` body: the clicks it holds, and whether it was a list.

    The route reads the body itself (to cap it while streaming), so this replaces FastAPI's body
    parsing; a list is length-checked here, before any click is validated. Validating the clicks
    is ``ClickLog.record_clicks``'s job (``ClickInput``), the same as for a Python caller.
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        # 16,000 "[" fit in the default size limit and exhaust the decoder's recursion limit.
        detail = [{"loc": ["body"], "msg": "invalid JSON: nested too deeply (a click is an object, a batch a "
                                           "list of objects)"}]
        raise ClickHTTPError(422, "ValidationError", detail) from None
    except ValueError as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors, and so is an integer longer than
        # Python's int_max_str_digits (4300), refused by the decoder itself.
        detail = [{"loc": ["body"], "msg": f"invalid JSON: {exc}"}]
        raise ClickHTTPError(422, "ValidationError", detail) from None
    if isinstance(data, list):
        if not data:
            raise ClickHTTPError(422, "ValidationError", "send at least one click")
        if len(data) > MAX_CLICKS_PER_REQUEST:
            detail = f"at most {MAX_CLICKS_PER_REQUEST} clicks per request"
            raise ClickHTTPError(413, "PayloadTooLarge", detail)
    return (data, True) if isinstance(data, list) else ([data], False)


def _shape_detail(exc: InvalidClickError, in_list: bool) -> list[dict[str, Any]]:
    """``InvalidClickError``'s problems located in the body, as FastAPI would locate them."""
    where = ["body", *([exc.index if exc.index is not None else 0] if in_list else [])]
    return [{"loc": [*where, *e["loc"]], "msg": e["msg"]} for e in exc.errors] or [{"loc": where, "msg": str(exc)}]


def create_click_app(
    log: ClickLog, *, token: str | None = None, max_body_bytes: int = 16_384, docs: bool | None = None,
) -> "FastAPI":
    """A FastAPI app serving ``POST /clicks`` and ``GET /healthz`` over ``log``.

    ``docs`` defaults to ``token is None`` (see the module docstring for why and what ``True`` does).
    """
    from fastapi import FastAPI, Request, Security
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from starlette.concurrency import run_in_threadpool

    show_docs = token is None if docs is None else docs
    public_docs = show_docs and token is None
    app = FastAPI(title="clicktune clicks", version="1", openapi_url="/openapi.json" if public_docs else None,
                  docs_url="/docs" if public_docs else None, redoc_url="/redoc" if public_docs else None)
    # auto_error=False: FastAPI's own 403/401 would not have our error shape or the challenge header.
    bearer = HTTPBearer(auto_error=False, description="the token given to create_click_app")

    def too_large() -> ClickHTTPError:  # a fresh exception per request: a shared one would share tracebacks
        return ClickHTTPError(413, "PayloadTooLarge", f"request body over {max_body_bytes} bytes")

    def error(status: int, name: str, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": name, "detail": detail}, headers=headers)

    @app.exception_handler(ClickHTTPError)
    async def _refused(_request: Request, exc: ClickHTTPError) -> JSONResponse:
        return error(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, "ValidationError", [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()
        ])

    def authorize(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> None:
        """Check the bearer token in constant time; runs before the body is read."""
        if token is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, token.encode()):
            raise ClickHTTPError(401, "Unauthorized", "send Authorization: Bearer <token>",
                                 {"WWW-Authenticate": "Bearer"})

    async def read_body(request: Request) -> bytes:
        """The request body, refused with 413 as soon as it passes ``max_body_bytes``.

        A declared Content-Length is checked before reading; a chunked body is read chunk by chunk
        so at most ``max_body_bytes`` plus one chunk is ever held in memory.
        """
        length = request.headers.get("content-length")
        # isascii: "²".isdigit() is true but int("²") fails
        if length is not None and not (length.isascii() and length.isdigit()
                                       and int(length) <= max_body_bytes):
            raise too_large()
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_body_bytes:
                raise too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    guarded = [Security(authorize)] if token is not None else []

    if show_docs and not public_docs:
        @app.get("/openapi.json", include_in_schema=False, dependencies=guarded, response_model=None)
        def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    schema = ClickInput.model_json_schema()
    body_doc = {"required": True, "content": {"application/json": {"schema": {
        "anyOf": [schema, {"type": "array", "items": schema,
                           "minItems": 1, "maxItems": MAX_CLICKS_PER_REQUEST}],
    }}}}

    # response_model=None: the route builds its responses itself. The module used to have postponed
    # annotations, so FastAPI saw the string "JSONResponse", tried to build a response model from it
    # and /openapi.json failed with PydanticUserError; annotations are now evaluated eagerly too.
    @app.post("/clicks", dependencies=guarded, response_model=None, openapi_extra={"requestBody": body_doc})
    async def post_clicks(request: Request) -> JSONResponse:
        clicks, in_list = decode_clicks(await read_body(request))
        try:
            # the click log is synchronous (SQL); keep it off the event loop
            stored = await run_in_threadpool(log.record_clicks, clicks)
        except InvalidClickError as exc:
            return error(422, "ValidationError", _shape_detail(exc, in_list))
        except UnknownSearchError as exc:
            return error(404, type(exc).__name__, str(exc))
        except FeedbackError as exc:
            return error(422, type(exc).__name__, str(exc))
        return JSONResponse(status_code=201 if any(stored) else 200,
                            content={"stored": sum(stored), "duplicates": len(stored) - sum(stored)})

    return app
