"""The optional HTTP click endpoint, through FastAPI's TestClient, on a real SQLite click log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from clicktune.adapters.clicklog import ClickLog, Impression, ShownResult
from clicktune.plugin.http import MAX_CLICKS_PER_REQUEST, create_click_app

TOKEN = "s3cret"


@pytest.fixture
def log(tmp_path: Path) -> ClickLog:
    return ClickLog(f"sqlite:///{tmp_path / 'f.db'}")


@pytest.fixture
def search_id(log: ClickLog) -> str:
    sid = str(uuid.uuid4())
    log.log_impression(Impression(search_id=sid, query="q", model_version="v0001", collection="docs__v0001",
                                  results=[ShownResult(doc_id="a", rank=1), ShownResult(doc_id="b", rank=2)]))
    return sid


@pytest.fixture
def client(log: ClickLog) -> TestClient:
    return TestClient(create_click_app(log, token=TOKEN, max_body_bytes=2048))


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_happy_path_single_and_batch(client: TestClient, log: ClickLog, search_id: str) -> None:
    r = client.post("/clicks", json={"search_id": search_id, "doc_id": "a", "dwell": 3.5}, headers=AUTH)
    assert r.status_code == 201 and r.json() == {"stored": 1, "duplicates": 0}
    r = client.post("/clicks", json=[{"search_id": search_id, "doc_id": "a"}, {"search_id": search_id, "doc_id": "b"}],
                    headers=AUTH)
    assert r.status_code == 201 and r.json() == {"stored": 1, "duplicates": 1}
    r = client.post("/clicks", json={"search_id": search_id, "doc_id": "b"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["duplicates"] == 1
    assert log.count_clicks() == 2
    assert client.get("/healthz").json() == {"status": "ok"}


def test_auth(client: TestClient, log: ClickLog, search_id: str) -> None:
    body = {"search_id": search_id, "doc_id": "a"}
    assert client.post("/clicks", json=body).status_code == 401
    r = client.post("/clicks", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    assert log.count_clicks() == 0


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({"search_id": "nope", "doc_id": "a"}, 422, "MalformedIdError"),
        ({"search_id": "SID", "doc_id": "zzz"}, 422, "DocNotShownError"),
        ({"search_id": str(uuid.UUID(int=5)), "doc_id": "a"}, 404, "UnknownSearchError"),
        ({"search_id": "SID", "doc_id": "a", "dwell": -2}, 422, "InvalidDwellError"),
        ({"search_id": "SID", "doc_id": "a", "grade": 9}, 422, "InvalidGradeError"),
        ({"search_id": "SID"}, 422, "ValidationError"),
        ({"search_id": "SID", "doc_id": "a", "extra": 1}, 422, "ValidationError"),
        ([], 422, "ValidationError"),
    ],
)
def test_validation(client: TestClient, log: ClickLog, search_id: str, body, status: int, error: str) -> None:
    if isinstance(body, dict):
        body = {k: (search_id if v == "SID" else v) for k, v in body.items()}
    r = client.post("/clicks", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["detail"]
    assert log.count_clicks() == 0


def test_size_limit(client: TestClient, log: ClickLog, search_id: str) -> None:
    big = [{"search_id": search_id, "doc_id": "a", "user": "u" * 200}] * 20
    r = client.post("/clicks", json=big, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    assert log.count_clicks() == 0


# --- auth and limits hold however the app is served (they used to be a middleware matching "/clicks") ---


def _serve(app: FastAPI, how: str) -> tuple[TestClient, str]:
    """A client and the path prefix under which ``app``'s routes answer."""
    if how == "mounted":
        main = FastAPI()
        main.mount("/beacon", app)
        return TestClient(main), "/beacon"
    if how == "app_root_path":  # FastAPI(root_path="/api") style
        app.root_path = "/api"
        return TestClient(app), "/api"
    if how == "client_root_path":
        return TestClient(app, root_path="/api"), "/api"
    return TestClient(app), ""


@pytest.mark.parametrize("how", ["plain", "mounted", "app_root_path", "client_root_path"])
def test_auth_and_limit_hold_however_served(log: ClickLog, search_id: str, how: str) -> None:
    client, prefix = _serve(create_click_app(log, token=TOKEN, max_body_bytes=2048), how)
    body = {"search_id": search_id, "doc_id": "a"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": TOKEN}):
        r = client.post(f"{prefix}/clicks", json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json() == {"error": "Unauthorized", "detail": "send Authorization: Bearer <token>"}
        assert r.headers["www-authenticate"] == "Bearer"
    assert log.count_clicks() == 0
    big = [{"search_id": search_id, "doc_id": "a", "user": "u" * 200}] * 20
    r = client.post(f"{prefix}/clicks", json=big, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    assert log.count_clicks() == 0
    r = client.post(f"{prefix}/clicks", json=body, headers=AUTH)
    assert r.status_code == 201 and r.json() == {"stored": 1, "duplicates": 0}
    assert log.count_clicks() == 1
    assert client.get(f"{prefix}/healthz").json() == {"status": "ok"}  # the liveness probe stays open


def test_no_token_means_open(log: ClickLog, search_id: str) -> None:
    client = TestClient(create_click_app(log))
    assert client.post("/clicks", json={"search_id": search_id, "doc_id": "a"}).status_code == 201


# --- the body is read as a stream and cut off at max_body_bytes ---


def _scope(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/clicks", "raw_path": b"/clicks", "root_path": "", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("testclient", 50000), "server": ("testserver", 80),
    }


async def _drive(app: FastAPI, headers: dict[str, str], chunk: bytes, n_chunks: int) -> tuple[int, int]:
    """Run one request straight through the ASGI app; returns (status, chunks the server pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= n_chunks:
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < n_chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(headers), receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), pulled


async def test_chunked_body_is_refused_at_the_limit_not_after_reading_it(log: ClickLog) -> None:
    app = create_click_app(log, token=TOKEN, max_body_bytes=2048)
    headers = {"host": "testserver", "content-type": "application/json", "transfer-encoding": "chunked",
               **AUTH}
    status, pulled = await _drive(app, headers, b"x" * 1024, n_chunks=5 * 1024)  # 5 MiB offered
    assert status == 413
    assert pulled <= 2048 // 1024 + 1, f"server read {pulled} KiB before refusing"
    assert log.count_clicks() == 0


async def test_unauthenticated_body_is_not_read(log: ClickLog) -> None:
    app = create_click_app(log, token=TOKEN, max_body_bytes=2048)
    headers = {"host": "testserver", "transfer-encoding": "chunked"}
    status, pulled = await _drive(app, headers, b"x" * 1024, 100)
    assert status == 401 and pulled == 0


@pytest.mark.parametrize("length", [str(10**9), "2049", "abc", "\u00b2", "-1"])
async def test_declared_content_length_too_big_is_refused_before_reading(log: ClickLog, length: str) -> None:
    app = create_click_app(log, token=TOKEN, max_body_bytes=2048)
    headers = {"host": "testserver", "content-length": length, **AUTH}
    status, pulled = await _drive(app, headers, b"x" * 1024, 100)
    assert status == 413 and pulled == 0


def test_chunked_body_through_the_client(client: TestClient, log: ClickLog, search_id: str) -> None:
    def gen(parts: list[bytes]) -> Iterator[bytes]:
        yield from parts

    ok = json.dumps({"search_id": search_id, "doc_id": "a"}).encode()
    headers = {**AUTH, "content-type": "application/json"}
    r = client.post("/clicks", content=gen([ok[:10], ok[10:]]), headers=headers)
    assert r.status_code == 201, r.text
    r = client.post("/clicks", content=gen([b"[" + b" " * 65536] * 64), headers=AUTH)  # 4 MiB, chunked
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    assert log.count_clicks() == 1


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"", b"42", b'"a"', b"null"])
def test_bad_json_is_a_validation_error(client: TestClient, log: ClickLog, raw: bytes) -> None:
    r = client.post("/clicks", content=raw, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "ValidationError" and r.json()["detail"]
    assert log.count_clicks() == 0


def test_too_many_clicks(log: ClickLog, search_id: str) -> None:
    client = TestClient(create_click_app(log, token=TOKEN, max_body_bytes=1_000_000))
    many = [{"search_id": search_id, "doc_id": "a"}] * (MAX_CLICKS_PER_REQUEST + 1)
    r = client.post("/clicks", json=many, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    assert log.count_clicks() == 0
    r = client.post("/clicks", json=many[:MAX_CLICKS_PER_REQUEST], headers=AUTH)
    assert r.status_code == 201 and r.json() == {"stored": 1, "duplicates": MAX_CLICKS_PER_REQUEST - 1}


# --- API docs ---


def test_openapi_served_without_a_token(log: ClickLog) -> None:
    client = TestClient(create_click_app(log))
    r = client.get("/openapi.json")
    assert r.status_code == 200, r.text
    post = r.json()["paths"]["/clicks"]["post"]
    assert "anyOf" in post["requestBody"]["content"]["application/json"]["schema"]
    assert client.get("/docs").status_code == 200


def test_docs_off_by_default_with_a_token(client: TestClient) -> None:
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 404, path
        assert client.get(path, headers=AUTH).status_code == 404, path


def test_docs_on_with_a_token_need_the_token(log: ClickLog) -> None:
    client = TestClient(create_click_app(log, token=TOKEN, docs=True))
    r = client.get("/openapi.json")
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    r = client.get("/openapi.json", headers=AUTH)
    assert r.status_code == 200 and "/clicks" in r.json()["paths"]
    assert "/openapi.json" not in r.json()["paths"]
    assert client.get("/docs").status_code == 404  # Swagger UI could not send the token for the schema


# --- bodies that used to crash the decoder (500) are validation errors ---


@pytest.mark.parametrize("raw", [b"[" * 16_000, b'{"search_id": "SID", "doc_id": "a", "grade": ' + b"9" * 5_000 + b"}"],
                         ids=["16000 brackets", "5000-digit grade"])
def test_a_body_the_json_decoder_cannot_hold_is_a_422(log: ClickLog, search_id: str, raw: bytes) -> None:
    client = TestClient(create_click_app(log, token=TOKEN), raise_server_exceptions=False)  # default 16 KiB limit
    r = client.post("/clicks", content=raw.replace(b"SID", search_id.encode()),
                    headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "ValidationError" and "invalid JSON" in r.json()["detail"][0]["msg"]
    assert log.count_clicks() == 0


def test_a_click_is_stored_as_the_user_its_search_was_logged_with(log: ClickLog) -> None:
    """The body's user_id is the browser's claim: the stored click is the search's user's (or no one's)."""
    client = TestClient(create_click_app(log, token=TOKEN))
    searches = {}
    for user in ("alice", None):
        searches[user] = str(uuid.uuid4())
        log.log_impression(Impression(search_id=searches[user], query="q", model_version="v0001",
                                      collection="docs__v0001", user_id=user, results=[ShownResult(doc_id="a", rank=1)]))
        r = client.post("/clicks", json={"search_id": searches[user], "doc_id": "a", "user_id": "mallory"}, headers=AUTH)
        assert r.status_code == 201, r.text
    stored = {event.impression.search_id: [c.user_id for c in event.clicks] for event in log.iter_feedback()}
    assert stored == {searches["alice"]: ["alice"], searches[None]: [None]}
