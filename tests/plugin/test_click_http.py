"""The optional HTTP click endpoint, through FastAPI's TestClient, on a real SQLite click log."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clicktune.adapters.clicklog import ClickLog, Impression, ShownResult
from clicktune.plugin.http import create_click_app

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
