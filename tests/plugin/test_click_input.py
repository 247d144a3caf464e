"""One click model (``ClickInput``) behind every door: the same bad click is refused with the same
typed error by ``record_click``, ``record_clicks`` and ``POST /clicks``, and a batch with one bad click
writes nothing. Real click logs (SQLite in tmp, PostgreSQL where the suite has one), no mocks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clicktune.adapters.clicklog import Click, ClickInput, ClickLog, Impression, ShownResult
from clicktune.adapters.errors import (
    DocNotShownError,
    FeedbackError,
    InvalidClickError,
    InvalidDwellError,
    InvalidGradeError,
    MalformedIdError,
    UnknownSearchError,
)
from clicktune.adapters.limits import MAX_DOC_ID_LENGTH, MAX_USER_ID_LENGTH
from clicktune.plugin import arecord_click, arecord_clicks, record_click, record_clicks, set_default_click_log
from clicktune.plugin.http import create_click_app


def _search(log: ClickLog) -> str:
    sid = str(uuid.uuid4())
    log.log_impression(Impression(search_id=sid, query="q", model_version="v0001", collection="docs__v0001",
                                  results=[ShownResult(doc_id=d, rank=r) for r, d in enumerate("abc", start=1)]))
    return sid


def _post(client: TestClient, body: Any) -> Any:
    """POST ``body`` as Python's json writes it (NaN and Infinity included, as a lax beacon might)."""
    return client.post("/clicks", content=json.dumps(body).encode(), headers={"content-type": "application/json"})


@pytest.fixture
def log(tmp_path: Path) -> Iterator[ClickLog]:
    log = ClickLog(f"sqlite:///{tmp_path / 'feedback.db'}")
    set_default_click_log(log)  # the module-level functions write here
    yield log
    set_default_click_log(None)
    log.close()


# (what is wrong, the fields that override a good click, the error every door must raise)
BAD_VALUES = [
    ("search id not a UUID", {"search_id": "not-a-uuid"}, MalformedIdError),
    ("empty doc id", {"doc_id": ""}, MalformedIdError),
    ("overlong doc id", {"doc_id": "d" * (MAX_DOC_ID_LENGTH + 1)}, MalformedIdError),
    ("doc id not a string", {"doc_id": 7}, MalformedIdError),
    ("overlong user, older name", {"user": "u" * (MAX_USER_ID_LENGTH + 1)}, MalformedIdError),
    ("overlong user_id", {"user_id": "u" * (MAX_USER_ID_LENGTH + 1)}, MalformedIdError),
    ("negative dwell, older name", {"dwell": -1.0}, InvalidDwellError),
    ("negative dwell_seconds", {"dwell_seconds": -0.5}, InvalidDwellError),
    ("infinite dwell", {"dwell_seconds": float("inf")}, InvalidDwellError),
    ("dwell as a string", {"dwell": "3"}, InvalidDwellError),
    ("grade above max_grade", {"grade": 4}, InvalidGradeError),
    ("grade a bool", {"grade": True}, InvalidGradeError),
    ("grade a float", {"grade": 2.0}, InvalidGradeError),
    ("doc not shown by the search", {"doc_id": "zzz"}, DocNotShownError),
    ("search never logged", {"search_id": str(uuid.UUID(int=7))}, UnknownSearchError),
]


@pytest.mark.parametrize("fields, error", [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
def test_the_same_bad_click_is_refused_with_the_same_error_by_every_door(
    log: ClickLog, fields: dict[str, Any], error: type[FeedbackError]
) -> None:
    click = {"search_id": _search(log), "doc_id": "a", **fields}
    keywords = {k: v for k, v in click.items() if k not in ("search_id", "doc_id")}
    refusals: list[FeedbackError] = []
    for call in (
        lambda: record_click(click["search_id"], click["doc_id"], **keywords),
        lambda: record_clicks([click]),
        lambda: asyncio.run(arecord_click(click["search_id"], click["doc_id"], **keywords)),
        lambda: asyncio.run(arecord_clicks([click])),
        lambda: log.record_clicks([ClickInput.model_construct(**click)]),  # an unvalidated object is checked too
    ):
        with pytest.raises(error) as refused:
            call()
        refusals.append(refused.value)
    assert len({str(e) for e in refusals}) == 1, [str(e) for e in refusals]

    r = _post(TestClient(create_click_app(log)), click)
    assert r.status_code == (404 if error is UnknownSearchError else 422), r.text
    assert r.json() == {"error": error.__name__, "detail": str(refusals[0])}
    assert log.count_clicks() == 0


BAD_SHAPES = [
    ("doc id missing", {"doc_id": None}, ["doc_id"]),
    ("unknown field", {"session": "s-1"}, ["session"]),
    ("user given under both names", {"user": "u", "user_id": "v"}, []),
    ("dwell given under both names", {"dwell": 1.0, "dwell_seconds": 2.0}, []),
]


@pytest.mark.parametrize("fields, loc", [c[1:] for c in BAD_SHAPES], ids=[c[0] for c in BAD_SHAPES])
def test_a_click_of_the_wrong_shape_is_an_invalid_click_in_python_and_a_validation_error_over_http(
    log: ClickLog, fields: dict[str, Any], loc: list[str]
) -> None:
    click = {k: v for k, v in {"search_id": _search(log), "doc_id": "a", **fields}.items() if v is not None}
    with pytest.raises(InvalidClickError, match="not a click") as refused:
        record_clicks([click])
    assert [e["loc"] for e in refused.value.errors] == [loc]
    if not loc:  # a field under both names: the one shape problem keywords can have
        with pytest.raises(InvalidClickError, match="not both"):
            record_click(click["search_id"], click["doc_id"], **fields)
    r = _post(TestClient(create_click_app(log)), click)
    assert r.status_code == 422 and r.json()["error"] == "ValidationError"
    assert [d["loc"] for d in r.json()["detail"]] == [["body", *loc]]
    assert log.count_clicks() == 0


@pytest.mark.parametrize("bad, error", [
    ({"doc_id": "a", "grade": 9}, InvalidGradeError),
    ({"doc_id": "a", "dwell": float("nan")}, InvalidDwellError),
    ({}, InvalidClickError),  # doc_id missing
    ({"doc_id": "zzz"}, DocNotShownError),
], ids=["bad-grade", "nan-dwell", "missing-doc-id", "doc-not-shown"])
def test_a_batch_with_one_bad_click_writes_nothing_through_any_door(
    db_url: str, bad: dict[str, Any], error: type[FeedbackError]
) -> None:
    log = ClickLog(db_url, max_grade=3)
    set_default_click_log(log)
    try:
        sid = _search(log)
        batch = [{"search_id": sid, "doc_id": "a"}, {"search_id": sid, "doc_id": "b", "user_id": "u"},
                 {"search_id": sid, **bad}]
        with pytest.raises(error, match="^click 2: "):
            record_clicks(batch)
        with pytest.raises(error, match="^click 2: "):
            log.record_clicks(batch)
        r = _post(TestClient(create_click_app(log)), batch)
        assert r.status_code == 422
        name = "ValidationError" if error is InvalidClickError else error.__name__
        assert r.json()["error"] == name
        if error is InvalidClickError:
            assert r.json()["detail"] == [{"loc": ["body", 2, "doc_id"], "msg": "Field required"}]
        assert log.count_clicks() == 0
        assert record_clicks(batch[:2]) == [True, True]  # the good ones alone are stored
    finally:
        set_default_click_log(None)
        log.close()


def test_old_and_new_field_names_store_the_same_click(log: ClickLog) -> None:
    sid = _search(log)
    assert record_click(sid, "a", dwell=3, user="u-old") is True
    assert record_click(sid, "b", dwell_seconds=4.5, user_id="u-new", grade=2) is True
    client = TestClient(create_click_app(log))
    other = _search(log)
    assert _post(client, {"search_id": other, "doc_id": "a", "dwell": 1, "user": "h-old"}).status_code == 201
    assert _post(client, {"search_id": other, "doc_id": "b", "dwell_seconds": 2, "user_id": "h-new"}).status_code == 201
    assert record_clicks([ClickInput(search_id=other, doc_id="c", user="obj", dwell=0)]) == [True]
    stored = [c for event in log.iter_feedback() for c in event.clicks]
    # the user is accepted under either name and validated, but stored as the search's (None here)
    assert [(c.doc_id, c.dwell_seconds, c.grade, c.user_id) for c in stored] == [
        ("a", 3.0, None, None), ("b", 4.5, 2, None),
        ("a", 1.0, None, None), ("b", 2.0, None, None), ("c", 0.0, None, None),
    ]
    assert all(isinstance(c, Click) and isinstance(c, ClickInput) and c.created_at.tzinfo for c in stored)


def test_a_click_object_built_without_the_logs_max_grade_is_checked_against_it(tmp_path: Path) -> None:
    log = ClickLog(f"sqlite:///{tmp_path / 'f.db'}", max_grade=1)
    sid = _search(log)
    click = ClickInput(search_id=sid, doc_id="a", grade=3)  # fine on its own: only grade >= 0 is known here
    with pytest.raises(InvalidGradeError, match="from 0 to 1"):
        log.record_clicks([click])
    assert log.record_clicks([ClickInput(search_id=sid, doc_id="a", grade=1)]) == [True]


def test_the_http_schema_is_the_click_model(tmp_path: Path) -> None:
    client = TestClient(create_click_app(ClickLog(f"sqlite:///{tmp_path / 'f.db'}")))
    body = client.get("/openapi.json").json()["paths"]["/clicks"]["post"]["requestBody"]
    one, many = body["content"]["application/json"]["schema"]["anyOf"]
    assert one == many["items"] and one["title"] == ClickInput.__name__  # FastAPI re-renders the schema
    assert set(one["properties"]) == set(ClickInput.model_fields) == {
        "search_id", "doc_id", "user_id", "dwell_seconds", "grade"}
    assert one["required"] == ["search_id", "doc_id"] and one["additionalProperties"] is False


def test_a_grade_too_long_to_print_is_an_invalid_grade(log: ClickLog) -> None:
    """repr() of a 5,000-digit int raises ValueError; the refusal must still be the typed grade error
    (over HTTP such a number never decodes: tests/plugin/test_click_http.py)."""
    with pytest.raises(InvalidGradeError, match="about 5000 digits"):
        record_click(_search(log), "a", grade=10**4999)
    assert log.count_clicks() == 0
